using System.Runtime.InteropServices;

namespace Berth.Core.Interop;

/// <summary>
/// One message with at most one file descriptor attached (SCM_RIGHTS) over a Unix socket: <c>sendmsg</c>/<c>recvmsg</c>
/// with the <c>msghdr</c>, <c>iovec</c> and <c>cmsghdr</c> of 64-bit Linux. Used where a socket travels between processes:
/// a pod's helper handing out sockets made inside the pod (<see cref="Routing.PodSockets"/>) and one data plane handing
/// its listening sockets to the next (Berth.Mesh's ListenerPassing). The kernel duplicates the descriptor into the
/// receiver; the sender keeps its own.
/// </summary>
internal static unsafe partial class ScmRights
{
    /// <summary><c>MSG_NOSIGNAL</c>: a closed peer is an EPIPE error, not a SIGPIPE.</summary>
    public const int MsgNoSignal = 0x4000;

    private const int SolSocket = 1;
    private const int Rights = 1;
    private const int MsgCmsgCloexec = 0x40000000;
    private const int ControlLength = 20; // CMSG_LEN(sizeof(int)) on 64-bit Linux
    private const int ControlSpace = 24; // CMSG_SPACE(sizeof(int))

    /// <summary>Sends <paramref name="data"/> and, unless it is -1, the descriptor <paramref name="fd"/>, in one message.
    /// Returns what <c>sendmsg</c> returned; on a negative result the errno is <see cref="Marshal.GetLastPInvokeError"/>.</summary>
    public static nint Send(int socket, ReadOnlySpan<byte> data, int fd, int flags)
    {
        var control = stackalloc byte[ControlSpace];
        new Span<byte>(control, ControlSpace).Clear();
        fixed (byte* p = data)
        {
            var iov = new IoVec { Base = p, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1 };
            if (fd >= 0)
            {
                var cmsg = (CmsgHdr*)control;
                cmsg->Length = ControlLength;
                cmsg->Level = SolSocket;
                cmsg->Type = Rights;
                *(int*)(control + sizeof(CmsgHdr)) = fd;
                msg.Control = control;
                msg.ControlLength = ControlSpace;
            }

            return SendMsg(socket, &msg, flags);
        }
    }

    /// <summary>Receives one message into <paramref name="data"/>: returns what <c>recvmsg</c> returned (the byte count,
    /// 0 at the end of the stream, negative on error with the errno in <see cref="Marshal.GetLastPInvokeError"/>) and in
    /// <paramref name="fd"/> the descriptor that came with it (close-on-exec), or -1 when none did.</summary>
    public static nint Receive(int socket, Span<byte> data, out int fd)
    {
        fd = -1;
        var control = stackalloc byte[ControlSpace];
        new Span<byte>(control, ControlSpace).Clear();
        fixed (byte* p = data)
        {
            var iov = new IoVec { Base = p, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSpace };
            var got = RecvMsg(socket, &msg, MsgCmsgCloexec);
            var cmsg = (CmsgHdr*)control;
            if (got > 0 && msg.ControlLength >= ControlLength && cmsg->Level == SolSocket && cmsg->Type == Rights)
            {
                fd = *(int*)(control + sizeof(CmsgHdr));
            }

            return got;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(int socket, MsgHdr* message, int flags);
}
