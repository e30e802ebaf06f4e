// The one way the library and the CLI write a file: regular files are replaced atomically (a temp file in the same
// folder, renamed over the target), devices, pipes and "-" (stdout) are written in place, and symlinks write through.
using System.Runtime.InteropServices;
using System.Text;

namespace InstaFlow.IO;

public static class SafeFile
{
    /// <summary>The output name that means standard output.</summary>
    public const string StandardOutput = "-";

    /// <summary>The longest file name (in UTF-8 bytes) Linux, macOS and Windows file systems accept.</summary>
    public const int MaxFileNameBytes = 255;

    /// <summary>
    /// Checks, before long work, that <paramref name="path"/> could be written: not a folder, a name file systems
    /// accept, an existing folder. Throws <see cref="InvalidInputException"/> naming <paramref name="option"/>.
    /// </summary>
    public static void CheckWritable(string path, string option)
    {
        if (path == StandardOutput) return;
        if (Directory.Exists(path))
            throw new InvalidInputException($"{option} {path} is a folder; name a file inside it (e.g. {Path.Combine(path, "out" + DefaultExtension(path))})");
        string name = Path.GetFileName(path);
        if (Encoding.UTF8.GetByteCount(name) > MaxFileNameBytes)
            throw new InvalidInputException($"{option}: the file name is {Encoding.UTF8.GetByteCount(name)} bytes long, more than file systems allow ({MaxFileNameBytes}); choose a shorter name");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir)) throw new InvalidInputException($"{option}: output folder does not exist: {dir}");
    }

    /// <summary>
    /// Writes a file through <paramref name="write"/>. A regular (or new) file is written to a temp file beside it,
    /// flushed to disk and renamed over it, so readers and crashes never see half a file; a symlink is followed and its
    /// final target replaced (the link stays a link); a character device, pipe or socket (/dev/null, /dev/stdout, a
    /// FIFO) is opened and written in place, never replaced; "-" writes to standard output. A directory, a missing
    /// folder, an overlong name or an unwritable place is an <see cref="InvalidInputException"/> naming the path.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        if (path == StandardOutput)
        {
            using var stdout = Console.OpenStandardOutput();
            write(stdout);
            stdout.Flush();
            return;
        }
        string full;
        try { full = Path.GetFullPath(path); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new InvalidInputException($"{path}: not a usable file path ({e.Message})");
        }

        // Stat follows links, so /dev/stdout (a link to /proc/self/fd/1, itself a link to a pipe or a tty) is seen as
        // the device it ends in and written in place; resolving such a link by name would give "pipe:[...]".
        switch (FileKinds.Of(full))
        {
            case FileKind.Directory:
                throw new InvalidInputException($"{path} is a folder; name a file inside it (e.g. {Path.Combine(path, "out" + DefaultExtension(path))})");
            case FileKind.Special:
                Guard(path, () =>
                {
                    using var fs = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16);
                    write(fs);
                    fs.Flush();
                });
                return;
        }

        string target = ResolveLinks(path, full);
        string dir = Path.GetDirectoryName(target)!;
        string name = Path.GetFileName(target);
        if (Encoding.UTF8.GetByteCount(name) > MaxFileNameBytes)
            throw new InvalidInputException($"{path}: the file name is {Encoding.UTF8.GetByteCount(name)} bytes long, more than file systems allow ({MaxFileNameBytes}); choose a shorter name");
        if (!Directory.Exists(dir))
            throw new InvalidInputException($"{path}: the folder {dir} does not exist; create it first");

        // A short, recognisable temp name in the target's folder: the rename stays on one file system, and a killed
        // run's leftover is visibly ours.
        string stem = name.Length > 64 ? name[..64] : name;
        string tmp = Path.Combine(dir, $".{stem}.{Random.Shared.Next():x8}.tmp");
        try
        {
            Guard(path, () =>
            {
                using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
                {
                    write(fs);
                    fs.Flush(flushToDisk: true);
                }
                // Keep the replaced file's permissions (a rename would otherwise reset them to the umask's).
                if (!OperatingSystem.IsWindows() && File.Exists(target)) File.SetUnixFileMode(tmp, File.GetUnixFileMode(target));
                File.Move(tmp, target, overwrite: true);
            });
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    public static void WriteAllText(string path, string text) => Write(path, s =>
    {
        var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
        s.Write(bytes);
    });

    /// <summary>Copies a file's bytes to <paramref name="to"/> with the same rules as <see cref="Write"/>.</summary>
    public static void Copy(string from, string to)
    {
        if (Path.GetFullPath(from) == Path.GetFullPath(to)) return;
        Write(to, s =>
        {
            using var src = File.OpenRead(from);
            src.CopyTo(s);
        });
    }

    /// <summary>The final target of a chain of symlinks (the path itself when it is not a link or does not exist).</summary>
    private static string ResolveLinks(string path, string full)
    {
        try
        {
            var info = new FileInfo(full);
            if (info.LinkTarget == null) return full;
            // returnFinalTarget follows the whole chain, relative links against their own folder; a dangling link
            // gives its (missing) target, which is then created, as the shell's "> link" does.
            return info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException e)
        {
            throw new InvalidInputException($"{path}: cannot follow the symbolic link ({e.Message})");
        }
    }

    /// <summary>Turns the errors a user can fix (permissions, a full disk, a bad name) into one-line messages.</summary>
    private static void Guard(string path, Action action)
    {
        try { action(); }
        catch (UnauthorizedAccessException e) { throw new InvalidInputException($"{path}: cannot write here ({e.Message})", e); }
        catch (PathTooLongException e) { throw new InvalidInputException($"{path}: the path is too long ({e.Message})", e); }
        catch (DirectoryNotFoundException e) { throw new InvalidInputException($"{path}: the folder does not exist ({e.Message})", e); }
        catch (IOException e) when (e.GetType() == typeof(IOException))
        {
            // Plain IOException is the OS refusing the write: disk full (/dev/full), read-only file system, quota.
            throw new InvalidInputException($"{path}: cannot write ({e.Message})", e);
        }
    }

    private static string DefaultExtension(string path) => Path.GetExtension(path) is { Length: > 0 } ext ? ext : ".png";
}

/// <summary>What a path names once links are followed.</summary>
internal enum FileKind { Missing, Regular, Directory, Special }

internal static class FileKinds
{
    /// <summary>
    /// The kind of file at <paramref name="path"/>, following links. .NET has no public API that tells a regular file
    /// from a device or a pipe, so on Unix this asks the runtime's own native shim (libSystem.Native, shipped with
    /// every .NET runtime); its FileStatus starts with two int32 fields, Flags then Mode, on every platform.
    /// </summary>
    public static FileKind Of(string path)
    {
        if (Directory.Exists(path)) return FileKind.Directory;
        if (OperatingSystem.IsWindows()) return File.Exists(path) ? FileKind.Regular : FileKind.Missing;
        try
        {
            // Generous room for the struct (about 120 bytes today) so a later runtime's larger one cannot overrun.
            Span<byte> status = stackalloc byte[512];
            if (Stat(path, ref MemoryMarshal.GetReference(status)) != 0) return FileKind.Missing;
            int mode = BitConverter.ToInt32(status[4..8]) & 0xF000;
            return mode switch { 0x8000 => FileKind.Regular, 0x4000 => FileKind.Directory, _ => FileKind.Special };
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return File.Exists(path) ? FileKind.Regular : FileKind.Missing;
        }
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", CharSet = CharSet.Ansi, SetLastError = true)]
    private static extern int StatNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, ref byte status);

    private static int Stat(string path, ref byte status) => StatNative(path, ref status);
}
