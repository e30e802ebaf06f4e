// The FID Inception (pytorch-fid 0.3.0) against its goldens: ToTensor, the resized input, every block's output and
// pool3 within the fixture README's tolerances; the loader's shape-driven widths, ignored keys and errors.
using InstaFlow.IO;
using InstaFlow.Models.Inception;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using Xunit.Abstractions;

namespace InstaFlow.Tests.Models;

public class FidInceptionTests(ITestOutputHelper output)
{
    public static string Dir => Path.Combine(TestUtil.Fixtures, "fid_inception");
    public static string Weights => Path.Combine(Dir, "pt_inception_fid_tiny.safetensors");
    private static readonly Lazy<FidInceptionV3> Model = new(() => FidInceptionV3.Load(Weights).Model);

    [Fact]
    public void FidInception_GoldenImages_MatchEveryIntermediateAndPool3()
    {
        using var golden = SafeTensors.Open(Path.Combine(Dir, "fid_features.safetensors"));
        using var scope = TensorScope.Begin();
        using var noGrad = GradMode.NoGrad();
        var u8 = golden.Info("images_u8_hwc").Shape;
        var images = ImageTensors.ToTensorUnit(golden.ReadU8("images_u8_hwc"), u8[0], u8[2], u8[1]);
        Check(golden, "images", images, 1e-6f, 0);
        var r = Model.Value.Forward(images, keepDebug: true);
        foreach (var name in golden.Names.Where(n => n.StartsWith("debug.", StringComparison.Ordinal)))
        {
            Assert.True(r.Debug.ContainsKey(name), $"no intermediate {name}");
            float atol = name == "debug.block0_input" ? 1e-6f : name is "debug.block0" or "debug.block1" ? 2e-4f : 1e-2f;
            Check(golden, name, r.Debug[name], atol, 0);
        }
        Check(golden, "pool3", r.Pool3, 2e-3f, 1e-3f);
    }

    private void Check(SafeTensorsFile golden, string name, Tensor actual, float atol, float rtol)
    {
        var expected = golden.ReadF32(name);
        output.WriteLine($"{name}: max abs diff {TestUtil.MaxAbsDiff(expected.Span, actual.Span):E2} (atol {atol}, rtol {rtol})");
        TestUtil.AssertClose(expected, actual, atol, rtol, name);
    }

    [Fact]
    public void FidInception_Load_WidthsFromShapesAndClassifierIgnored()
    {
        var (model, report) = FidInceptionV3.Load(Weights);
        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(256, model.FeatureSize);
        Assert.DoesNotContain(model.NamedParameters(), p => p.Name.StartsWith("fc.", StringComparison.Ordinal));
        Assert.Contains(model.NamedParameters(), p => p.Name == "Mixed_7c.branch3x3dbl_3b.bn.running_var");
        using var file = SafeTensors.Open(Weights);
        Assert.Equal(file.Names.Count(n => !n.StartsWith("fc.", StringComparison.Ordinal)), model.NamedParameters().Count());
    }

    /// <summary>The fixture weights with some tensors dropped, replaced or added, written to a temporary file.</summary>
    private static string Edited(Func<IEnumerable<(string Name, Tensor Tensor)>, IEnumerable<(string Name, Tensor Tensor)>> edit, (string, long[])[]? int64 = null)
    {
        using var file = SafeTensors.Open(Weights);
        var path = Path.Combine(Path.GetTempPath(), $"fid-edit-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, edit(file.Names.Select(n => (n, file.ReadF32(n))).ToList()).ToList(), int64: int64);
        return path;
    }

    [Fact]
    public void FidInception_NumBatchesTracked_IsIgnored()
    {
        var path = Edited(t => t, [("Conv2d_1a_3x3.bn.num_batches_tracked", [7L])]);
        try { Assert.True(FidInceptionV3.Load(path).Report.IsComplete); }
        finally { File.Delete(path); }
    }

    [Fact]
    public void FidInception_MissingOrExtraKeys_ErrorNamesThem()
    {
        var missing = Edited(t => t.Where(x => x.Name != "Mixed_6e.branch_pool.bn.running_var"));
        var extra = Edited(t => t.Append(("Mixed_5b.extra.weight", Tensor.Zeros(3))));
        var noConv = Edited(t => t.Where(x => x.Name != "Mixed_7b.branch1x1.conv.weight"));
        try
        {
            Assert.Contains("Mixed_6e.branch_pool.bn.running_var", Assert.Throws<InvalidInputException>(() => FidInceptionV3.Load(missing)).Message);
            Assert.Contains("Mixed_5b.extra.weight", Assert.Throws<InvalidInputException>(() => FidInceptionV3.Load(extra)).Message);
            Assert.Contains("Mixed_7b.branch1x1.conv.weight", Assert.Throws<InvalidInputException>(() => FidInceptionV3.Load(noConv)).Message);
        }
        finally { File.Delete(missing); File.Delete(extra); File.Delete(noConv); }
    }

    [Fact]
    public void FidInception_WrongShapes_ErrorNamesKeyAndShapes()
    {
        // a 3x3 kernel where the architecture has 1x7, and a BatchNorm vector of the wrong width
        var kernel = Edited(t => t.Select(x => x.Name == "Mixed_6b.branch7x7_2.conv.weight" ? (x.Name, Tensor.Zeros(16, 16, 3, 3)) : x));
        var bn = Edited(t => t.Select(x => x.Name == "Conv2d_4a_3x3.bn.bias" ? (x.Name, Tensor.Zeros(5)) : x));
        try
        {
            var e = Assert.Throws<InvalidInputException>(() => FidInceptionV3.Load(kernel)).Message;
            Assert.Contains("Mixed_6b.branch7x7_2.conv.weight", e);
            Assert.Contains("[16, 16, 3, 3]", e);
            Assert.Contains("[16, 16, 1, 7]", e);
            Assert.Contains("Conv2d_4a_3x3.bn.bias", Assert.Throws<InvalidInputException>(() => FidInceptionV3.Load(bn)).Message);
        }
        finally { File.Delete(kernel); File.Delete(bn); }
    }

    [Fact]
    public void FidInception_MissingFile_FileNotFound() =>
        Assert.Contains("nope.safetensors", Assert.Throws<FileNotFoundException>(() => FidInceptionV3.Load(Path.Combine(Dir, "nope.safetensors"))).Message);
}
