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
