// SafeFile: regular files are replaced atomically, symlinks write through to their target, devices and pipes are
// written in place and never replaced, and a folder or an overlong name is a one-line InvalidInputException.
using System.Diagnostics;
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public sealed class SafeFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("instaflow-safefile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Write_RegularFile_ReplacedWithNoTempLeftBehind()
    {
        string path = Path.Combine(_dir, "a.bin");
        File.WriteAllText(path, "old contents that are longer");
        SafeFile.WriteAllBytes(path, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        Assert.Equal(new[] { "a.bin" }, Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Write_FailingWriter_KeepsTheOldFileAndLeavesNoTemp()
    {
        string path = Path.Combine(_dir, "keep.bin");
        File.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => SafeFile.Write(path, s => { s.WriteByte(9); throw new InvalidOperationException("writer failed"); }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Write_Symlink_StaysALinkAndItsTargetChanges()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "blobs"));
        string target = Path.Combine(_dir, "blobs", "target.png");
        File.WriteAllText(target, "old");
        string link = Path.Combine(_dir, "link.png");
        File.CreateSymbolicLink(link, Path.Combine("blobs", "target.png")); // relative, as the Hugging Face cache makes them

        Png.Write(link, 2, 1, 3, new byte[] { 1, 2, 3, 4, 5, 6 });

        Assert.Equal(Path.Combine("blobs", "target.png"), new FileInfo(link).LinkTarget);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, Png.Read(target).Pixels);
        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "blobs"), "*.tmp"));
    }

    [Fact]
    public void Write_DanglingSymlink_CreatesItsTarget()
    {
        string target = Path.Combine(_dir, "new.json");
        string link = Path.Combine(_dir, "link.json");
        File.CreateSymbolicLink(link, target);
        SafeFile.WriteAllText(link, "{}");
        Assert.NotNull(new FileInfo(link).LinkTarget);
        Assert.Equal("{}", File.ReadAllText(target));
    }

    // As root a rename over /dev/null would succeed and replace the device; as any other user it would throw: either
    // way a writer that renamed over special files fails here, so the test needs no particular user.
    [Fact]
    public void Write_DevNull_StaysACharacterDevice()
    {
        if (!File.Exists("/dev/null")) Assert.Fail("test needs /dev/null (Linux); this suite runs on Linux only");
        Png.Write("/dev/null", 1, 1, 3, new byte[] { 1, 2, 3 });
        SafeTensors.Save("/dev/null", new[] { ("x", InstaFlow.Tensors.Tensor.FromArray([1f, 2f], 2)) });
        Assert.Equal(FileKind.Special, FileKinds.Of("/dev/null"));
        Assert.Empty(Directory.GetFiles("/dev", ".null.*"));
    }

    [Fact]
    public void Write_DevFull_IsAOneLineErrorAndTheDeviceStays()
    {
        if (!File.Exists("/dev/full")) Assert.Fail("test needs /dev/full (Linux); this suite runs on Linux only");
        var e = Assert.Throws<InvalidInputException>(() => SafeFile.WriteAllBytes("/dev/full", new byte[100]));
        Assert.Contains("/dev/full", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(FileKind.Special, FileKinds.Of("/dev/full"));
    }

    [Fact]
    public async Task Write_Fifo_WritesThroughThePipeInPlace()
    {
        if (OperatingSystem.IsWindows()) Assert.Fail("named pipes in the file system are Unix-only; this suite runs on Linux");
        string fifo = Path.Combine(_dir, "pipe");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        Assert.Equal(FileKind.Special, FileKinds.Of(fifo));
        var reader = Task.Run(() => File.ReadAllBytes(fifo));
        SafeFile.WriteAllBytes(fifo, [7, 8, 9]);
        Assert.True(await Task.WhenAny(reader, Task.Delay(TimeSpan.FromSeconds(10))) == reader, "the reader never saw the end of the pipe");
        Assert.Equal(new byte[] { 7, 8, 9 }, await reader);
        Assert.Equal(FileKind.Special, FileKinds.Of(fifo));
    }

    [Fact]
    public void Write_Directory_IsAOneLineInvalidInput()
    {
        var e = Assert.Throws<InvalidInputException>(() => Png.Write(_dir, 1, 1, 3, new byte[] { 1, 2, 3 }));
        Assert.Contains("is a folder", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Write_OverlongFileName_IsAOneLineInvalidInput()
    {
        string path = Path.Combine(_dir, new string('n', 300) + ".png");
        var e = Assert.Throws<InvalidInputException>(() => Png.Write(path, 1, 1, 3, new byte[] { 1, 2, 3 }));
        Assert.Contains("300", e.Message.Replace("304", "300"));
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Write_MissingFolder_IsAOneLineInvalidInput()
    {
        var e = Assert.Throws<InvalidInputException>(() => SafeFile.WriteAllText(Path.Combine(_dir, "no", "such", "a.json"), "{}"));
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Generate_OutputIsAFolder_OneLineErrorBeforeLoading()
    {
        Cli.CliRunner.AssertUserError(["generate", "red apple", "-o", _dir], "is a folder");
    }

    [Fact]
    public void Generate_OverlongOutputName_OneLineError()
    {
        Cli.CliRunner.AssertUserError(["generate", "red apple", "--seed", "1", "-o", Path.Combine(_dir, new string('x', 300) + ".png")], "file name");
    }
}
