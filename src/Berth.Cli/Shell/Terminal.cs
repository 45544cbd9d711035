using System.Runtime.InteropServices;

namespace Berth.Cli.Shell;

/// <summary>The user's terminal for an attached TTY (<c>exec</c> into a container): raw mode while attached, as
/// <c>docker exec -it</c> puts it, so keys (Ctrl-C too) go to the command, and the window size for resizing its TTY.</summary>
internal static partial class Terminal
{
    private const int StdinFd = 0;
    private const int StdoutFd = 1;
    private const int TcsaNow = 0;
    private const nuint Tiocgwinsz = 0x5413;

    /// <summary>Whether stdin is a terminal (a TTY is allocated only then, as docker compose exec does).</summary>
    public static bool StdinIsTerminal => IsATty(StdinFd) == 1;

    /// <summary>Puts the terminal in raw mode until the returned scope is disposed; null when stdin is no terminal.</summary>
    public static IDisposable? Raw()
    {
        // struct termios is 60 bytes on Linux (glibc and musl); 128 leaves room.
        var saved = new byte[128];
        if (TcGetAttr(StdinFd, saved) != 0)
        {
            return null;
        }

        var raw = (byte[])saved.Clone();
        CfMakeRaw(raw);
        return TcSetAttr(StdinFd, TcsaNow, raw) == 0 ? new Restore(saved) : null;
    }

    /// <summary>Columns and rows of the terminal on stdout (or stdin); null when neither is a terminal.</summary>
    public static (int Columns, int Rows)? Size()
    {
        foreach (var fd in (int[])[StdoutFd, StdinFd])
        {
            var size = new ushort[4];
            if (Ioctl(fd, Tiocgwinsz, size) == 0 && size[1] > 0)
            {
                return (size[1], size[0]);
            }
        }

        return null;
    }

    /// <summary>Stdin, stdout or stderr (0, 1, 2) as a stream. On a terminal not <c>Console.OpenStandard*</c>: those set
    /// .NET's console up for key reading and write its keypad escape sequence to the screen; elsewhere they are the right
    /// choice (a file's offset is shared, not kept apart as a <see cref="FileStream"/> keeps it).</summary>
    public static Stream Open(int fd) => IsATty(fd) == 1
        ? new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), fd == StdinFd ? FileAccess.Read : FileAccess.Write, bufferSize: 0)
        : fd switch { StdinFd => Console.OpenStandardInput(), StdoutFd => Console.OpenStandardOutput(), _ => Console.OpenStandardError() };

    /// <summary>A new pseudo-terminal with the settings (echo, erase, …) and window size of berth's own terminal, as
    /// <c>ssh</c> and <c>script</c> make one: the command gets the slave (by path), berth keeps the master. Both ends are
    /// close-on-exec, so the command inherits neither. Null when there is no pty to be had (no /dev/pts).</summary>
    public static Pty? OpenPty()
    {
        var settings = new byte[128];
        var hasSettings = TcGetAttr(StdinFd, settings) == 0;
        var size = new ushort[4];
        if (Size() is { } s)
        {
            (size[0], size[1]) = ((ushort)s.Rows, (ushort)s.Columns);
        }

        if (OpenPtyNative(out var master, out var slave, null, hasSettings ? settings : null, size) != 0)
        {
            return null;
        }

        _ = Fcntl(master, FSetFd, FdCloExec);
        _ = Fcntl(slave, FSetFd, FdCloExec);
        var name = new byte[256];
        if (PtsName(slave, name, (nuint)name.Length) != 0)
        {
            _ = Close(master);
            _ = Close(slave);
            return null;
        }

        return new Pty(master, slave, System.Text.Encoding.UTF8.GetString(name, 0, Array.IndexOf(name, (byte)0)));
    }

    /// <summary>A pty made by <see cref="OpenPty"/>: the master as a stream, the slave's path for the command.</summary>
    public sealed class Pty(int master, int slave, string slavePath) : IDisposable
    {
        private int _slave = slave;

        public string SlavePath { get; } = slavePath;

        /// <summary>The master: what the command writes is read here, what is written here is the command's input.</summary>
        public FileStream Master { get; } = new(new Microsoft.Win32.SafeHandles.SafeFileHandle(master, ownsHandle: true), FileAccess.ReadWrite, bufferSize: 0);

        /// <summary>Gives the command berth's current window size (on SIGWINCH); the kernel signals its foreground group.</summary>
        public void Resize()
        {
            if (Size() is { } s)
            {
                _ = IoctlSet(master, Tiocswinsz, [(ushort)s.Rows, (ushort)s.Columns, 0, 0]);
            }
        }

        /// <summary>Lets go of berth's own slave end once the command has its own: the master then reads EOF (EIO) when the
        /// command and all it started have closed theirs, instead of waiting forever.</summary>
        public void CloseSlave()
        {
            if (Interlocked.Exchange(ref _slave, -1) is var fd and >= 0)
            {
                _ = Close(fd);
            }
        }

        public void Dispose()
        {
            CloseSlave();
            Master.Dispose();
        }
    }

    private const int FSetFd = 2;
    private const int FdCloExec = 1;
    private const nuint Tiocswinsz = 0x5414;

    [LibraryImport("libc", EntryPoint = "openpty")]
    private static partial int OpenPtyNative(out int master, out int slave, byte[]? name, byte[]? termios, ushort[] size);

    [LibraryImport("libc", EntryPoint = "ttyname_r")]
    private static partial int PtsName(int fd, [Out] byte[] buffer, nuint length);

    [LibraryImport("libc", EntryPoint = "fcntl")]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl")]
    private static partial int IoctlSet(int fd, nuint request, ushort[] size);

    private sealed class Restore(byte[] saved) : IDisposable
    {
        public void Dispose() => _ = TcSetAttr(StdinFd, TcsaNow, saved);
    }

    [LibraryImport("libc", EntryPoint = "isatty")]
    private static partial int IsATty(int fd);

    [LibraryImport("libc", EntryPoint = "tcgetattr")]
    private static partial int TcGetAttr(int fd, [Out] byte[] termios);

    [LibraryImport("libc", EntryPoint = "tcsetattr")]
    private static partial int TcSetAttr(int fd, int when, byte[] termios);

    [LibraryImport("libc", EntryPoint = "cfmakeraw")]
    private static partial void CfMakeRaw([In, Out] byte[] termios);

    [LibraryImport("libc", EntryPoint = "ioctl")]
    private static partial int Ioctl(int fd, nuint request, [Out] ushort[] size);
}
