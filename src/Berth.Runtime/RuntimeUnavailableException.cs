namespace Berth.Runtime;

/// <summary>A driver's runtime (the Docker engine) does not answer: what it says about a replica is unknown, not that the
/// replica is gone. A container outlives its engine (containerd and the container's shim keep it running), so the control
/// plane keeps the replica as it was and asks again, as the kubelet keeps a pod's last status while the runtime is down.</summary>
public class RuntimeUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
