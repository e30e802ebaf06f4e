// AFL++ target for the readers that take untrusted bytes: `safetensors` (the header validation and every tensor read)
// or `png` (our decoder, limits and text chunks). A run may end in success or InvalidInputException; anything else is a
// finding, which run.sh keeps as a regression case for tests/InstaFlow.Tests/Fuzz/FuzzRegressionTests.cs.
using InstaFlow;
using InstaFlow.IO;
using SharpFuzz;

var target = args.Length == 1 ? args[0] : throw new ArgumentException("usage: InstaFlow.Fuzz safetensors|png");
// safetensors files are memory-mapped, so each input goes through one scratch file of this process
var scratch = Path.Combine(Path.GetTempPath(), $"instaflow-fuzz-{Environment.ProcessId}.safetensors");
Fuzzer.OutOfProcess.Run(stream =>
{
    using var ms = new MemoryStream();
    stream.CopyTo(ms);
    var bytes = ms.ToArray();
    try
    {
        if (target == "png") Png.Decode(bytes, "fuzz.png");
        else
        {
            File.WriteAllBytes(scratch, bytes);
            using var f = SafeTensors.Open(scratch);
            foreach (var t in f.Tensors)
            {
                f.ReadF32(t.Name).Dispose();
                using var stored = f.ReadStored(t.Name);
                stored.ToArray();
            }
        }
    }
    catch (InvalidInputException) { }
});
