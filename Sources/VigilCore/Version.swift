/// The version of vigil, printed by `vigil version` and sent as User-Agent.
public enum VigilVersion {
    public static let current = "0.4.0"
}
