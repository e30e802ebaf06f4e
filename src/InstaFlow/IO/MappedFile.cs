// Maps a weights file into memory copy-on-write, the one way both weight readers (safetensors, PyTorch checkpoints)
// open files: links are resolved before sizing (the Hugging Face cache keeps every snapshot file as a link into blobs/).
using System.IO.MemoryMappedFiles;
using InstaFlow.Tensors;

namespace InstaFlow.IO;

internal static unsafe class MappedFile
{
    /// <summary>
    /// The whole file (or the file a link points to) as a NativeBuffer that unmaps when its last reference goes; then
    /// parse runs on it, and if parse throws the mapping is released. Copy-on-write: zero-copy weight tensors may be
    /// updated in place (fine-tuning, merges) without touching the file.
    /// </summary>
    public static T Open<T>(string path, long minLength, string tooShort, Func<NativeBuffer, long, T> parse)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"file not found: {path}", path);
        var info = new FileInfo(path);
        if (info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) info = target;
        long length = info.Length;
        if (length < minLength) throw new InvalidInputException($"{path}: file is {length} bytes, {tooShort}");

        var mmf = MemoryMappedFile.CreateFromFile(info.FullName, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        NativeBuffer? mapping = null;
        try
        {
            view = mmf.CreateViewAccessor(0, length, MemoryMappedFileAccess.CopyOnWrite);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            var accessor = view;
            // The mapping lives until the reader and every zero-copy tensor over it have released their reference.
            mapping = NativeBuffer.WrapFileMapping(p, length, _ =>
            {
                accessor.SafeMemoryMappedViewHandle.ReleasePointer();
                accessor.Dispose();
                mmf.Dispose();
            });
            return parse(mapping, length);
        }
        catch
        {
            if (mapping != null) mapping.Release();
            else
            {
                view?.Dispose();
                mmf.Dispose();
            }
            throw;
        }
    }
}
