// Fast SGEMM vs the double-precision reference: odd sizes, all transpose flags, alpha/beta, padded leading
// dimensions, every micro-kernel path, A packed or read in place, and bitwise equality across thread counts.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)]
public unsafe class GemmTests
{
    private static readonly int[] Sizes = { 1, 7, 17, 33, 65, 257 };

    /// <summary>Operands with leading dimensions padded by extra, plus the fast and reference results.</summary>
    private sealed class Case
    {
        public readonly int M, N, K, Lda, Ldb, Ldc;
        public readonly bool TransA, TransB;
        public readonly float[] A, B, C0;

        public Case(int seed, bool transA, bool transB, int m, int n, int k, int extra = 0)
        {
            (M, N, K, TransA, TransB) = (m, n, k, transA, transB);
            Lda = (transA ? m : k) + extra; Ldb = (transB ? k : n) + extra; Ldc = n + extra;
            A = TestUtil.RandomArray(seed, (long)(transA ? k : m) * Lda);
            B = TestUtil.RandomArray(seed + 1, (long)(transB ? n : k) * Ldb);
            C0 = TestUtil.RandomArray(seed + 2, (long)m * Ldc);
        }

        public float[] Run(bool fast, float alpha, float beta)
        {
            var c = (float[])C0.Clone();
            fixed (float* pa = A, pb = B, pc = c)
            {
                if (fast) Gemm.Sgemm(TransA, TransB, M, N, K, alpha, pa, Lda, pb, Ldb, beta, pc, Ldc);
                else GemmReference.Sgemm(TransA, TransB, M, N, K, alpha, pa, Lda, pb, Ldb, beta, pc, Ldc);
            }
            return c;
        }

        public void AssertMatches(float alpha, float beta)
        {
            // Errors grow like sqrt(K) for random +-1 data; the padding beyond n must be untouched.
            float tol = 2e-6f * MathF.Sqrt(K) * MathF.Max(1, MathF.Abs(alpha)) + 1e-6f;
            TestUtil.AssertClose(Run(false, alpha, beta), Run(true, alpha, beta), tol, 0,
                $"m={M} n={N} k={K} tA={TransA} tB={TransB} alpha={alpha} beta={beta} isa={GemmKernels.Isa}");
        }
    }

    public static IEnumerable<object[]> OddShapes()
    {
        foreach (int m in Sizes)
            foreach (int n in Sizes)
                foreach (int k in new[] { 1, 17, 257 })
                    yield return new object[] { m, n, k };
    }

    [Theory]
    [MemberData(nameof(OddShapes))]
    public void Sgemm_OddShapesAllTransposes_MatchesReference(int m, int n, int k)
    {
        int seed = m * 10007 + n * 101 + k;
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                new Case(seed, ta, tb, m, n, k).AssertMatches(1f, 0f);
    }

    [Theory]
    [InlineData(1.5f, 0f)]
    [InlineData(1f, 1f)]
    [InlineData(-0.5f, 2f)]
    [InlineData(0f, 0.5f)]
    public void Sgemm_AlphaBetaPaddedLeadingDims_MatchesReference(float alpha, float beta)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                new Case(3, ta, tb, 65, 257, 33, extra: 5).AssertMatches(alpha, beta);
                new Case(4, ta, tb, 7, 33, 65, extra: 3).AssertMatches(alpha, beta);
            }
    }

    [Fact]
    public void Sgemm_LongK_MatchesReferenceAcrossKBlocks()
    {
        new Case(9, false, true, 70, 100, 1000).AssertMatches(1f, 0.25f);
        new Case(10, true, false, 33, 600, 700, extra: 1).AssertMatches(1f, 0f);
    }

    [Fact]
    public void Sgemm_ZeroK_ScalesC()
    {
        var cs = new Case(5, false, false, 17, 33, 0);
        TestUtil.AssertClose(cs.C0.Select(v => v * 0.5f).ToArray(), cs.Run(true, 1f, 0.5f), 0, 0, "k=0");
    }

    // Every narrower instruction set this CPU has (scalar always) against the widest: the same bits.
    [Fact]
    public void Sgemm_NarrowerIsas_BitwiseEqualsWidest()
    {
        foreach (var isa in new[] { GemmIsa.Avx2, GemmIsa.Scalar }.Where(i => i < GemmKernels.Best)) NarrowerIsaBitwiseEqualsWidest(isa);
    }

    private static void NarrowerIsaBitwiseEqualsWidest(GemmIsa isa)
    {
        // both A layouts: their panels are packed by vector code on the wide paths and by plain loops on the scalar one
        foreach (var cs in new[] { new Case(6, false, true, 65, 257, 300, extra: 2), new Case(7, true, false, 67, 45, 300, extra: 3) })
        {
            var wide = cs.Run(true, 1.25f, 0.5f);
            var saved = GemmKernels.Isa;
            try
            {
                GemmKernels.Isa = isa;
                Assert.Equal(wide, cs.Run(true, 1.25f, 0.5f));
                cs.AssertMatches(1.25f, 0.5f);
            }
            finally { GemmKernels.Isa = saved; }
        }
    }

    // Row-major A with alpha 1 is read in place by the micro-kernel; packing it first must give the same bits, on
    // every instruction set, with edge tiles (m not a multiple of 6), several K blocks, padded lda, bias-free beta.
    // A conv's output gradient [image, row, position] packed where it lies: the same floats as packing the rows of
    // all the images copied into one matrix (rows past a panel, runs crossing K blocks, positions past one block).
    [Theory]
    [InlineData(13, 37, 3)]
    [InlineData(6, 300, 2)]
    [InlineData(64, 16, 40)]
    [InlineData(1, 5, 1)]
    public void PackARowsPerImage_Images_EqualsPackAOfTheJoinedRows(int m, int ld, int images)
    {
        var gy = TestUtil.RandomArray(m + ld, (long)images * m * ld);
        int k = images * ld;
        var joined = new float[(long)m * k];
        for (int i = 0; i < m; i++)
            for (int b = 0; b < images; b++)
                Array.Copy(gy, ((long)b * m + i) * ld, joined, (long)i * k + (long)b * ld, ld);
        var expected = new float[GemmPacking.PackedSize(m, k, GemmKernels.MR)];
        var got = new float[expected.Length];
        fixed (float* pg = gy, pj = joined, pe = expected, pr = got)
        {
            GemmPacking.PackA(false, pj, k, m, k, 1f, pe);
            GemmPacking.PackARowsPerImage(pg, (long)m * ld, ld, images, m, pr);
        }
        Assert.Equal(expected, got);
    }

    [Theory]
    [InlineData(305, 257, 300, 2)]
    [InlineData(260, 40, 513, 0)]
    [InlineData(257, 33, 1, 5)]
    public void Sgemm_RowMajorAInPlace_BitwiseEqualsPackedA(int m, int n, int k, int extra)
    {
        Assert.True(Gemm.ReadAInPlace(m), $"m={m} would pack A: this test would compare a path with itself");
        AssertInPlaceEqualsPacked(new Case(12, false, true, m, n, k, extra));
    }

    /// <summary>Sgemm (reading A in place) against A packed first, at every ISA the machine has, and against the reference.</summary>
    private static void AssertInPlaceEqualsPacked(Case cs)
    {
        var saved = GemmKernels.Isa;
        try
        {
            foreach (var isa in new[] { GemmIsa.Avx512, GemmIsa.Avx2, GemmIsa.Scalar }.Where(i => i <= GemmKernels.Best))
            {
                GemmKernels.Isa = isa;
                var inPlace = cs.Run(true, 1f, 0.5f);
                var packed = (float[])cs.C0.Clone();
                var ap = new float[GemmPacking.PackedSize(cs.M, cs.K, GemmKernels.MR)];
                fixed (float* pa = cs.A, pb = cs.B, pc = packed, pap = ap)
                {
                    GemmPacking.PackA(cs.TransA, pa, cs.Lda, cs.M, cs.K, 1f, pap);
                    Gemm.RunDense(cs.M, cs.N, cs.K, pap, new DenseSource(pb, cs.Ldb, cs.TransB), 0.5f, null, pc, cs.Ldc);
                }
                Assert.Equal(packed, inPlace);
                cs.AssertMatches(1f, 0.5f);
            }
        }
        finally { GemmKernels.Isa = saved; }
    }

    // op(A) = A^T read where it lies (the weight gradients' g^T): partial row tiles, several K blocks, both B layouts.
    [Theory]
    [InlineData(131, 70, 600, 3, false)]
    [InlineData(512, 64, 257, 0, false)]
    [InlineData(128, 33, 1, 5, true)]
    public void Sgemm_TransposedAInPlace_BitwiseEqualsPackedA(int m, int n, int k, int extra, bool transB)
    {
        Assert.True(Gemm.ReadTransposedAInPlace(m), $"m={m} would pack A: this test would compare a path with itself");
        AssertInPlaceEqualsPacked(new Case(13, true, transB, m, n, k, extra));
    }

    // A dense B packed and multiplied a chunk of columns at a time (the last chunk ragged) gives the bits of B packed
    // whole: the same panels and the same K order for every element. Both transposes, A packed and read in place.
    [Theory]
    [InlineData(false, 20, 1000, 600, 1f)]
    [InlineData(true, 300, 333, 260, 1f)]
    [InlineData(false, 40, 777, 70, 1.5f)]
    public void Sgemm_DenseBInChunks_BitwiseEqualsWhole(bool transB, int m, int n, int k, float alpha)
    {
        var cs = new Case(14, false, transB, m, n, k, extra: 3);
        long saved = Gemm.DenseChunkBytes;
        try
        {
            Gemm.DenseChunkBytes = long.MaxValue / 8;
            var whole = cs.Run(true, alpha, 0.5f);
            Gemm.DenseChunkBytes = 64L * 1024;
            Assert.True(64L * 1024 / (k * 4L) < n, "one chunk: the test would compare a path with itself");
            Assert.Equal(whole, cs.Run(true, alpha, 0.5f));
        }
        finally { Gemm.DenseChunkBytes = saved; }
        cs.AssertMatches(alpha, 0.5f);
    }

    // A Linear's bias written into each tile as the GEMM first stores it must give the bits of the output filled
    // with the bias beforehand and accumulated onto (beta 1): small (unpacked) shapes, edge tiles, several K blocks,
    // A read in place and packed, the weight packed per call and packed once.
    [Theory]
    [InlineData(7, 40, 33, false)]
    [InlineData(65, 257, 300, false)]
    [InlineData(305, 100, 513, true)]
    [InlineData(260, 1600, 70, true)]
    public void SgemmStoredBT_ColumnBias_BitwiseEqualsBiasFilledFirst(int m, int n, int k, bool prepacked)
    {
        var a = TestUtil.RandomArray(31, (long)m * k);
        var w = TestUtil.RandomArray(32, (long)n * k);
        var bias = TestUtil.RandomArray(33, n);
        var fused = new float[m * n];
        var filled = new float[m * n];
        for (int i = 0; i < m; i++) Array.Copy(bias, 0, filled, i * n, n);
        var packed = new float[GemmPacking.PackedSize(n, k, GemmKernels.NR)];
        fixed (float* pa = a, pw = w, pb = bias, pf = fused, pl = filled, pp = packed)
        {
            var stored = new StoredData((byte*)pw, TensorDType.F32);
            Gemm.PackStoredBT(stored, k, n, k, pp);
            float* pre = prepacked ? pp : null;
            Gemm.SgemmStoredBT(m, n, k, pa, k, stored, k, 0f, pf, n, pre, pb);
            Gemm.SgemmStoredBT(m, n, k, pa, k, stored, k, 1f, pl, n, pre);
        }
        Assert.Equal(filled, fused);
    }

    [Theory]
    [InlineData(300, 700, 600)]
    [InlineData(77, 768, 768)]
    [InlineData(5, 3000, 64)]
    public void Sgemm_OneVersusTwoThreads_BitwiseIdentical(int m, int n, int k)
    {
        var cs = new Case(8, false, false, m, n, k);
        int saved = Par.Threads;
        try
        {
            Par.Threads = 1;
            var one = cs.Run(true, 1f, 0.5f);
            Par.Threads = 2;
            var two = cs.Run(true, 1f, 0.5f);
            Assert.Equal(one, two);
        }
        finally { Par.Threads = saved; }
    }
    /// <summary>The split-K weight-gradient GEMM against the reference, and its result on one thread and on two.</summary>
    private static (float[] Fast, float[] Reference, float[] OneThread) SplitK(bool transA, bool transB, int m, int n, int k)
    {
        int lda = transA ? m : k, ldb = transB ? k : n;
        var a = TestUtil.RandomArray(m * 31 + k, (long)(transA ? k : m) * lda);
        var b = TestUtil.RandomArray(n * 37 + k, (long)(transB ? n : k) * ldb);
        var fast = new float[m * n]; var reference = new float[m * n]; var one = new float[m * n];
        int saved = Par.Threads;
        fixed (float* pa = a, pb = b, pf = fast, pr = reference, po = one)
        {
            try
            {
                Par.Threads = 2;
                GemmSplitK.Sgemm(transA, transB, m, n, k, pa, lda, pb, ldb, pf);
                Par.Threads = 1;
                GemmSplitK.Sgemm(transA, transB, m, n, k, pa, lda, pb, ldb, po);
            }
            finally { Par.Threads = saved; }
            GemmReference.Sgemm(transA, transB, m, n, k, 1f, pa, lda, pb, ldb, 0f, pr, n);
        }
        return (fast, reference, one);
    }

    [Theory]
    [InlineData(true, false, 64, 64, 8192)]
    [InlineData(true, false, 17, 33, 3 * GemmSplitK.ChunkRows + 5)]
    [InlineData(false, true, 7, 65, 2 * GemmSplitK.ChunkRows + 1)]
    [InlineData(false, false, 5, 3, 4 * GemmSplitK.ChunkRows - 1)]
    [InlineData(true, true, 40, 9, 2 * GemmSplitK.ChunkRows - 1)]
    public void SplitK_LongKOddShapes_MatchesReferenceOnAnyThreadCount(bool transA, bool transB, int m, int n, int k)
    {
        var (fast, reference, one) = SplitK(transA, transB, m, n, k);
        // float sums over thousands of +-1 products: the error bound grows like sqrt(k)
        TestUtil.AssertClose(reference, fast, 4e-6f * MathF.Sqrt(k) + 1e-6f, 0, $"split-K m={m} n={n} k={k} tA={transA} tB={transB}");
        Assert.Equal(one, fast);
    }
}
