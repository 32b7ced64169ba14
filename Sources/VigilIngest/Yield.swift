#if canImport(Glibc)
import Glibc
#endif
import CIOPriority

/// How an analysis that reads the whole journal beside a running daemon
/// (`vigil backtest`, `vigil journal export`) keeps out of its way.
public enum Yield {
    /// What `toTheDaemon` obtained.
    public struct Classes: Sendable, Equatable {
        /// The CPU: Linux's idle scheduling class (`SCHED_IDLE`), or nice 19
        /// where that was refused.
        public var cpuIdle: Bool
        /// The disk: the idle I/O class.
        public var diskIdle: Bool

        public init(cpuIdle: Bool, diskIdle: Bool) {
            self.cpuIdle = cpuIdle; self.diskIdle = diskIdle
        }
    }

    /// The calling thread to the idle classes, for the CPU and for the disk.
    ///
    /// CPU: any of the daemon's threads that wakes takes the core from this
    /// one at once (at nice 10 a woken thread may still wait out part of its
    /// time slice). Disk: when the journal is not in the page cache, its
    /// reads wait while the daemon's commits have requests queued, instead
    /// of the commits' syncs waiting behind a gigabyte of reads (the disk's
    /// scheduler, mq-deadline or BFQ, orders requests by class; with none,
    /// the class changes nothing). Recent kernels give a `SCHED_IDLE` thread
    /// with no I/O class of its own the idle one anyway; set explicitly, it
    /// holds on older kernels and under the nice-19 fallback too, and the
    /// test can see it. The analysis still gets whatever the host
    /// leaves, which on an idle machine is all of it.
    ///
    /// Both classes are the calling thread's: the analysis must run on it
    /// alone, never suspending (an `await` could move the work to another
    /// thread of the pool and leave this one in the idle classes).
    @discardableResult
    public static func toTheDaemon() -> Classes {
        var param = sched_param()
        param.sched_priority = 0
        let schedIdle: Int32 = 5  // SCHED_IDLE (Linux, sched.h)
        var cpu = sched_setscheduler(0, schedIdle, &param) == 0
        if !cpu { cpu = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19) == 0 }
        return Classes(cpuIdle: cpu, diskIdle: vigil_ioprio_set_idle() == 0)
    }

    /// The calling thread's I/O class (0 none set, 1 real time, 2 best effort, 3 idle), nil when it cannot be read.
    public static var diskClass: Int? {
        let c = vigil_ioprio_class()
        return c < 0 ? nil : Int(c)
    }
}
