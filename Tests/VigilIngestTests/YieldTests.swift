import Foundation
import Testing
import VigilIngest

@Suite struct YieldTests {
    /// A backtest's (or an export's) thread gives the CPU and the disk to the
    /// daemon: Linux's idle scheduling class and the idle I/O class, on that
    /// thread alone.
    @Test func anAnalysisThreadTakesTheIdleClassesForTheCPUAndTheDisk() async {
        let before = Yield.diskClass
        let (classes, policy, disk) = await withCheckedContinuation { (done: CheckedContinuation<(Yield.Classes, Int32, Int?), Never>) in
            // A thread of its own: the classes are the thread's, and this one ends here.
            let thread = Thread {
                let classes = Yield.toTheDaemon()
                done.resume(returning: (classes, sched_getscheduler(0), Yield.diskClass))
            }
            thread.start()
        }
        #expect(classes == Yield.Classes(cpuIdle: true, diskIdle: true))
        #expect(policy == 5)  // SCHED_IDLE
        #expect(disk == 3)  // the idle I/O class
        #expect(before != 3)
        #expect(Yield.diskClass == before)  // the test's own thread is untouched
    }
}
