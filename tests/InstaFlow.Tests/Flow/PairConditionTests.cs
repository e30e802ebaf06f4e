// Conditional reflow pairs: each pair's condition index is deterministic, stored in its shard, independent of the
// sharding, used (with guidance) by the teacher's ODE, and handed back with the pair for training.
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Tests.Flow;

public class PairConditionTests
{
    // v(x, t, c) = c: the ODE from 0 to 1 moves every sample by exactly its condition, which makes the
    // condition used for each pair visible in (Z1 - Z0).
    private sealed class CondVelocity : Module, IVelocityModel
    {
        public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond) => cond!.Clone();
    }

    // condition i is the 2-vector (i, -2i); the null condition is zero
    private static Tensor Lookup(int[] idx) => Tensor.FromArray(idx.SelectMany(i => new[] { (float)i, -2f * i }).ToArray(), idx.Length, 2);

    private static PairGenerator Generator(float guidance) =>
        new(new FlowModel(new CondVelocity(), FlowConvention.InstaFlow), new EulerSampler(3), [2], 7, batchSize: 4,
            conditions: new PairConditions(5, Lookup, guidance, Tensor.Zeros(1, 2)));

    private static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "instaflow-pairs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    // Guidance is on only above 1, as in generation: 0, 0.5 and 1 are the plain conditional field (a scale of 0 once
    // made unconditional pairs here while `generate --guidance 0` was conditional).
    [Theory]
    [InlineData(0f)]
    [InlineData(0.5f)]
    [InlineData(1f)]
    [InlineData(2.5f)]
    public void Pairs_AnyGuidance_MoveByTheGuidedConditionAsGenerationDoes(float guidance)
    {
        var dir = TempDir();
        try
        {
            var gen = Generator(guidance);
            PairShards.Write(gen, dir, 10, 3);
            var set = PairShards.Load(dir);
            Assert.NotNull(set.Conditions);
            Assert.Equal(Enumerable.Range(0, 10).Select(k => gen.ConditionIndex(k)), set.Conditions!);
            Assert.True(set.Conditions!.Distinct().Count() > 1, "condition indices should vary between pairs");
            var p = set.Points.Span;
            for (int k = 0; k < 10; k++)
            {
                int c = set.Conditions[k];
                // guided with a zero null condition: v = 0 + w * (c - 0); unguided: v = c
                float w = Guidance.IsOn(guidance) ? guidance : 1f;
                Assert.Equal(w * c, p[k * 4 + 2] - p[k * 4 + 0], 4);
                Assert.Equal(w * -2f * c, p[k * 4 + 3] - p[k * 4 + 1], 4);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    // A rule that only ever picks conditions 3 and 4: the shards hold only those, name the rule, and a resumed run that
    // draws by another rule (here the default, seed mod Count) is refused rather than mixing the two.
    [Fact]
    public void Pairs_ChosenRule_UsedRecordedAndOtherRuleRefusedOnResume()
    {
        var dir = TempDir();
        try
        {
            var conditions = new PairConditions(5, Lookup, Choose: s => 3 + (int)(s % 2), Drawn: "three-or-four");
            var gen = new PairGenerator(new FlowModel(new CondVelocity(), FlowConvention.InstaFlow), new EulerSampler(3), [2], 7, batchSize: 4, conditions: conditions);
            PairShards.Write(gen, dir, 12, 6);
            var set = PairShards.Load(dir);
            Assert.All(set.Conditions!, c => Assert.InRange(c, 3, 4));
            Assert.Contains(3, set.Conditions!); Assert.Contains(4, set.Conditions!);
            using (var f = InstaFlow.IO.SafeTensors.Open(PairShards.Path(dir, 0))) Assert.Equal("three-or-four", f.Metadata["conditions_drawn"]);

            var e = Assert.Throws<InvalidInputException>(() => PairShards.Write(Generator(1f), dir, 12, 6));
            Assert.Contains("three-or-four", e.Message);
            Assert.Contains(PairConditions.Uniform, e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Pairs_ShardedDifferently_SameConditionsAndStoredPairsReturnThem()
    {
        var a = TempDir(); var b = TempDir();
        try
        {
            PairShards.Write(Generator(1f), a, 9, 9);
            PairShards.Write(Generator(1f), b, 9, 2);
            var sa = PairShards.Load(a); var sb = PairShards.Load(b);
            Assert.Equal(sa.Conditions!, sb.Conditions!);
            Assert.Equal(sa.Points.ToArray(), sb.Points.ToArray());

            var batch = new StoredPairs(sa, Lookup).Next(new TorchGenerator(3), 6);
            var z0 = batch.Points[0].Span; var z1 = batch.Points[1].Span; var c = batch.Cond!.Span;
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 2; j++) Assert.Equal(c[i * 2 + j], z1[i * 2 + j] - z0[i * 2 + j], 4);
            Assert.Throws<InvalidInputException>(() => new StoredPairs(new PairSet(sa.Points, sa.Grid), Lookup));
        }
        finally { Directory.Delete(a, true); Directory.Delete(b, true); }
    }
}
