using System.Runtime.InteropServices;

namespace Berth.Mesh.Transport;

/// <summary>The few libc calls the mesh's own event loop makes (Linux only: epoll, eventfd, non-blocking socket I/O).</summary>
internal static unsafe partial class Epoll
{
    public const uint In = 0x1, Out = 0x4, Err = 0x8, Hup = 0x10, RdHup = 0x2000, EdgeTriggered = 1u << 31;
    public const int CtlAdd = 1, CtlDel = 2;
    public const int EAgain = 11, EIntr = 4, EInProgress = 115;
    public const int MsgNoSignal = 0x4000;
    public const int ShutWrite = 1, ShutBoth = 2;

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public struct Event
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int Create(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int Control(int epfd, int op, int fd, Event* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int Wait(int epfd, Event* events, int max, int timeout);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Receive(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept(int fd, void* address, void* length, int flags);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* address, int length);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSocketOption(int fd, int level, int name, void* value, int* length);

    public const int NonBlock = 0x800, CloseOnExec = 0x80000;
}
