// Winograd F(4x4, 3x3) forward convolution for 3x3, stride-1, padding-1 layers: 36 GEMMs with 2.25x fewer
// multiply-adds than the direct implicit GEMM. Hand-written because no .NET library has it; the GEMMs are ours.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>When <see cref="Ops.Conv2d(Tensor, Tensor, Tensor?, int, int)"/> takes the Winograd path.</summary>
public enum WinogradMode { Auto, Always, Never }

/// <summary>
/// Y = A^T [ (G g G^T) . (B^T d B) ] A over 6x6 input tiles that give 4x4 output tiles, with the interpolation points
/// 0, 1, -1, 2, -2 and infinity (Lavin and Gray, 2016). Larger points (F(6x6) needs +-1/2 and +-4 or 3) lose more
/// digits; with these the transforms only scale by up to 25 (input) and 8 (output), see the error test.
/// <para>
/// Work is cut into blocks of output tiles. A block is transformed (36 matrices InC x tiles, written straight into
/// the GEMM's packed-B panel layout), multiplied by the 36 transformed weight matrices (OutC x InC) with the packed
/// micro-kernel, and transformed back into the output, all by one thread, so the block's buffers stay near L2.
/// Blocks run in parallel. The weight transform U = G g G^T is redone on every call (small next to the GEMMs at
/// the shapes the heuristic picks): U is 4x the size of the weights (36 vs 9 numbers per filter), so caching it for
/// every layer of SD-1.5 would add gigabytes. Only weights that opt in (<see cref="WeightPack"/>) keep theirs.
/// </para>
/// </summary>
public static unsafe class Conv2dWinograd
{
    private const int MR = GemmKernels.MR, NR = GemmKernels.NR;
    /// <summary>Tiles per vector: the transforms run on 16 tiles at once, one per lane.</summary>
    private const int L = 16;

    /// <summary>Auto by default; INSTAFLOW_WINOGRAD=1/on forces it for every qualifying shape, 0/off disables it.</summary>
    public static WinogradMode Mode { get; set; } = ModeFromEnvironment();

    private static WinogradMode ModeFromEnvironment() => Environment.GetEnvironmentVariable("INSTAFLOW_WINOGRAD")?.Trim().ToLowerInvariant() switch
    {
        "1" or "on" or "always" or "true" => WinogradMode.Always,
        "0" or "off" or "never" or "false" => WinogradMode.Never,
        _ => WinogradMode.Auto,
    };

    /// <summary>3x3 kernel, stride 1, padding 1 on every side: the only geometry this kernel computes.</summary>
    public static bool Qualifies(in Conv2dShape s) =>
        s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.PadTop == 1 && s.PadBottom == 1 && s.PadLeft == 1 && s.PadRight == 1;

    /// <summary>Whether the forward conv should take this path under <see cref="Mode"/>.</summary>
    public static bool ShouldUse(in Conv2dShape s)
    {
        if (!Qualifies(s)) return false;
        return Mode switch
        {
            WinogradMode.Always => true,
            WinogradMode.Never => false,
            _ => Faster(s),
        };
    }

    /// <summary>
    /// Measured on the 2-core AVX-512 machine (docs/PERFORMANCE.md): Winograd wins once both channel counts fill
    /// the GEMM (K = InC and M = OutC of at least 64) and there are enough tiles per image to amortize the
    /// transformed weights, which must be streamed once per block; without AVX-512 the lane-wise transforms run
    /// in software, so the direct path stays.
    /// </summary>
    private static bool Faster(in Conv2dShape s)
    {
        if (!Vector512.IsHardwareAccelerated) return false;
        long tiles = (long)s.Batch * ((s.H + 3) / 4) * ((s.W + 3) / 4);
        return s.InC >= 64 && s.OutC >= 64 && tiles >= 64;
    }

    /// <summary>
    /// Tiles per block: a multiple of 32 (one B panel), with the block's V and M under about 3 MB (at least 4 blocks
    /// per image, for both cores and a stolen one). Every block streams all of U, 36 x InC x OutC floats, for its
    /// 36 x (InC + OutC) floats of V and M per tile, so where there are tiles enough a block gets InC x OutC /
    /// (InC + OutC) tiles, where U's traffic per tile falls to V's and M's (keeping 8 blocks per image, or 4 once U
    /// outgrows its share of the L3 and each block more costs a pass over memory). 2 threads: 256 channels at 256x256
    /// (32 -> 128 tiles) 0.86-0.98x in two runs; 512 channels at 128x128, 32 tiles 105 ms, 64 90, 128 83, 256 78
    /// (docs/PERFORMANCE.md).
    /// </summary>
    internal static int BlockTiles(int inC, int outC, long tiles)
    {
        long perTile = 36L * (inC + outC) * sizeof(float);
        int t = (int)Math.Clamp(3L * 1024 * 1024 / perTile / NR * NR, NR, 128);
        while (t > NR && Blocks(tiles, t) < 4) t -= NR;
        int reusing = (int)Math.Clamp((long)inC * outC / (inC + outC) / NR * NR, NR, 256);
        int minBlocks = 36L * inC * outC * sizeof(float) > 16L * 1024 * 1024 ? 4 : 8;
        while (reusing > t && Blocks(tiles, reusing) < minBlocks) reusing -= NR;
        return Math.Max(t, reusing);
    }

    private static long Blocks(long tiles, int perBlock) => (tiles + perBlock - 1) / perBlock;

    /// <summary>
    /// Small images of wide layers (SD's UNet at 32x32: 64 tiles, 640-1280 channels, U of 59-236 MB) make too few
    /// blocks to keep both cores busy unless each block is small, and every block reads all of U from memory. There
    /// the whole image is one block whose input transform, 36 GEMMs and output transform are each split between the
    /// threads (by channel, by matrix, by channel): U is read once. The sums are the same, so are the bits.
    /// </summary>
    internal static bool OneWideBlock(in Conv2dShape s, long tiles) =>
        Par.Threads > 1 && tiles <= 256 && 36L * s.InC * s.OutC * sizeof(float) > 16L * 1024 * 1024 && !ForceBlocks;

    /// <summary>Tests set this to take the per-block path where <see cref="OneWideBlock"/> would not (same bits).</summary>
    internal static bool ForceBlocks;

    /// <summary>y = conv3x3(x, w, stride 1, padding 1) + bias (bias may be null); s must satisfy <see cref="Qualifies"/>.</summary>
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y) =>
        Forward(s, x, new StoredData((byte*)w, TensorDType.F32), bias, y);

    /// <summary>
    /// The same with the weight in its stored precision (F16/BF16 taps are widened as they are transformed).
    /// prepackedU, when not null, holds w already transformed by <see cref="TransformWeights(StoredData, int, int, float*)"/>
    /// (a <see cref="WeightPack"/>), and w is not read.
    /// </summary>
    internal static void Forward(in Conv2dShape s, float* x, StoredData w, float* bias, float* y, float* prepackedU = null)
    {
        if (!Qualifies(s)) throw new ArgumentException($"Conv2dWinograd: needs a 3x3 kernel, stride 1, padding 1; got {s}");
        var g = s;
        int tilesX = (s.W + 3) / 4, tilesY = (s.H + 3) / 4;
        long tiles = (long)s.Batch * tilesX * tilesY;
        int blockTiles = BlockTiles(s.InC, s.OutC, tiles);
        int blocks = (int)((tiles + blockTiles - 1) / blockTiles);
        long uStride = UStride(s.OutC, s.InC);
        // The transformed weights (4x the weights, up to ~120 MB for SD-1.5) differ in size per layer: pooled, every
        // layer's would stay alive (+0.45 GiB peak for one image), so they share the one packed-weights buffer.
        var ubuf = prepackedU == null ? PackArena.Rent(TransformedFloats(s.OutC, s.InC) * sizeof(float)) : null;
        try
        {
            float* u = prepackedU;
            if (u == null)
            {
                u = (float*)ubuf!.Pointer;
                TransformWeights(g, w, u, uStride);
                Ops.InferenceMark("conv Winograd: transforming the weight");
            }
            if (OneWideBlock(s, tiles))
            {
                // all tiles in one block, its three phases split between the threads: U is read once, not once per block
                RunBlock(g, x, u, uStride, bias, y, 0, (int)tiles, tilesX, tilesY, wide: true);
                return;
            }
            Par.For(blocks, blk =>
            {
                long t0 = (long)blk * blockTiles;
                int n = (int)Math.Min(blockTiles, tiles - t0);
                RunBlock(g, x, u, uStride, bias, y, t0, n, tilesX, tilesY, wide: false);
            });
        }
        finally { ubuf?.Release(); }
    }

    private static long UStride(int outC, int inC) => Skewed(GemmPacking.PackedSize(outC, inC, MR));

    /// <summary>Floats of the 36 transformed weight matrices of an outC x inC 3x3 layer, as <see cref="Forward(in Conv2dShape, float*, StoredData, float*, float*, float*)"/> lays them out.</summary>
    internal static long TransformedFloats(int outC, int inC) => 36 * UStride(outC, inC);

    /// <summary>U for a weight [outC, inC, 3, 3], laid out as Forward uses it (TransformedFloats(outC, inC) floats).</summary>
    internal static void TransformWeights(StoredData w, int outC, int inC, float* u) =>
        TransformWeights(new Conv2dShape(1, inC, 4, 4, outC, 3, 3, 1, 1, 1, 1, 1), w, u, UStride(outC, inC));

    /// <summary>
    /// Distance between two of the 36 matrices: an odd number of cache lines. The transforms touch one element of
    /// each of the 36 at a time, and with the natural sizes (multiples of 4 KiB: 96 x 128 floats, 1284 x 1280) all
    /// 36 fall in the same cache set, which made the 1280-channel weight transform 20x slower than it should be.
    /// </summary>
    private static long Skewed(long floats)
    {
        long lines = (floats + 15) / 16;
        return (lines | 1) * 16;
    }

    /// <summary>
    /// U = G g G^T for every (o, c), written straight into the packed-A layout of 36 OutC x InC matrices (rows past
    /// OutC zero), so the GEMMs read it as they read packed weights. Within one K block the packed layout is one
    /// contiguous run per matrix, so 16 consecutive packed entries (16 (o, c) pairs) are transformed at once and
    /// land as one vector store in each of the 36 matrices.
    /// </summary>
    private static void TransformWeights(Conv2dShape s, StoredData w, float* u, long uStride)
    {
        var kb = new KBlocks(s.InC);
        int rowsPad = GemmPacking.RoundUp(s.OutC, MR);
        for (int blk = 0; blk < kb.Count; blk++)
        {
            int k0 = kb.Start(blk), kc = kb.Length(blk);
            long region = (long)rowsPad * kc, start = (long)rowsPad * k0;
            long groups = (region + L - 1) / L;
            Par.ForRange(groups, 64, (g0, g1) =>
            {
                float* f = stackalloc float[9 * L];
                Span<Vector512<float>> gg = stackalloc Vector512<float>[18];
                Span<Vector512<float>> uu = stackalloc Vector512<float>[36];
                for (long grp = g0; grp < g1; grp++)
                {
                    long q0 = grp * L;
                    for (int j = 0; j < L; j++)
                    {
                        // Entry q of the block: panel q / (6 kc), then k-major inside the panel.
                        long q = q0 + j;
                        int panel = (int)(q / (MR * kc)), rem = (int)(q % (MR * kc));
                        int o = panel * MR + rem % MR, c = k0 + rem / MR;
                        if (q >= region || o >= s.OutC) { for (int e = 0; e < 9; e++) f[e * L + j] = 0f; continue; }
                        long src = ((long)o * s.InC + c) * 9;
                        if (w.DType == TensorDType.F32)
                            for (int e = 0; e < 9; e++) f[e * L + j] = ((float*)w.Pointer)[src + e];
                        else
                            for (int e = 0; e < 9; e++) f[e * L + j] = w[src + e];
                    }
                    // G g: each kernel column (3 taps down) becomes 6 values; then each of the 6 rows likewise.
                    for (int col = 0; col < 3; col++)
                        Interpolate(Vector512.Load(f + col * L), Vector512.Load(f + (3 + col) * L), Vector512.Load(f + (6 + col) * L), gg, col, 3);
                    for (int row = 0; row < 6; row++) Interpolate(gg[row * 3], gg[row * 3 + 1], gg[row * 3 + 2], uu, row * 6, 1);
                    float* dst = u + start + q0;
                    if (q0 + L <= region)
                        for (int xi = 0; xi < 36; xi++) uu[xi].Store(dst + xi * uStride);
                    else
                        for (int xi = 0; xi < 36; xi++)
                            for (int j = 0; j < region - q0; j++) dst[xi * uStride + j] = uu[xi].GetElement(j);
                }
            });
        }
    }

    /// <summary>The 3-tap filter's values at the points 0, 1, -1, 2, -2, infinity (G's rows), to o[first + i * stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interpolate(Vector512<float> g0, Vector512<float> g1, Vector512<float> g2, Span<Vector512<float>> o, int first, int stride)
    {
        var s = g0 + g2;
        var p = g0 * (1f / 24) + g2 * (1f / 6);
        var q = g1 * (1f / 12);
        o[first] = g0 * 0.25f;
        o[first + stride] = -(s + g1) * (1f / 6);
        o[first + 2 * stride] = (g1 - s) * (1f / 6);
        o[first + 3 * stride] = p + q;
        o[first + 4 * stride] = p - q;
        o[first + 5 * stride] = g2;
    }

    /// <summary>
    /// One block of n tiles (global tile indices t0..t0+n, raster order over image, tile row, tile column): input
    /// transform into packed B panels, 36 GEMMs, output transform with bias.
    /// </summary>
    private static void RunBlock(in Conv2dShape s, float* x, float* u, long uStride, float* bias, float* y,
        long t0, int n, int tilesX, int tilesY, bool wide)
    {
        int tpad = GemmPacking.RoundUp(n, NR);
        long vStride = Skewed((long)tpad * s.InC), mStride = Skewed((long)tpad * s.OutC);
        var vbuf = NativeBuffer.Rent(36 * vStride * sizeof(float));
        var mbuf = NativeBuffer.Rent(36 * mStride * sizeof(float));
        // Per lane: offset of the tile's top-left input element (row and column -1) in image 0's channel 0, plus
        // which of the 6x6 taps fall inside the image (all of them except at the borders).
        long* inBase = stackalloc long[tpad];
        long* outBase = stackalloc long[tpad];
        int* rows = stackalloc int[tpad];
        int* cols = stackalloc int[tpad];
        int* ys = stackalloc int[tpad];
        int* xs = stackalloc int[tpad];
        float* d = stackalloc float[36 * L];
        try
        {
            float* v = (float*)vbuf.Pointer, m = (float*)mbuf.Pointer;
            long plane = (long)s.H * s.W;
            for (int j = 0; j < tpad; j++)
            {
                if (j >= n) { rows[j] = -1; continue; }
                long t = t0 + j;
                int b = (int)(t / ((long)tilesX * tilesY)), rest = (int)(t % ((long)tilesX * tilesY));
                int ty = rest / tilesX, tx = rest % tilesX;
                ys[j] = 4 * ty - 1; xs[j] = 4 * tx - 1;
                inBase[j] = b * s.InC * plane + (long)ys[j] * s.W + xs[j];
                outBase[j] = b * s.OutC * plane + (long)(4 * ty) * s.W + 4 * tx;
                rows[j] = Math.Min(4, s.H - 4 * ty);
                cols[j] = Math.Min(4, s.W - 4 * tx);
            }
            var g = s;
            if (wide)
                Par.ForRange(s.InC, 8, (c0, c1) =>
                {
                    float* dd = stackalloc float[36 * L];
                    TransformInput(g, x, v, vStride, tpad, inBase, rows, ys, xs, (int)c0, (int)c1, dd);
                });
            else TransformInput(s, x, v, vStride, tpad, inBase, rows, ys, xs, 0, s.InC, d);
            var kb = new KBlocks(s.InC);
            void Position(int xi)
            {
                float* uxi = u + xi * uStride, vxi = v + xi * vStride, mxi = m + xi * mStride;
                for (int kbi = 0; kbi < kb.Count; kbi++)
                {
                    int k0 = kb.Start(kbi), kc = kb.Length(kbi);
                    float beta = kbi == 0 ? 0f : 1f;
                    float* aBlock = uxi + GemmPacking.PanelOffset(g.OutC, MR, k0, kc, 0);
                    for (int jp = 0; jp < tpad; jp += NR)
                    {
                        float* panel = vxi + GemmPacking.PanelOffset(tpad, NR, k0, kc, jp);
                        for (int ip = 0; ip < g.OutC; ip += MR)
                            GemmKernels.Tile(kc, aBlock + (long)ip * kc, panel, mxi + (long)ip * tpad + jp, tpad,
                                Math.Min(MR, g.OutC - ip), NR, beta, null);
                    }
                }
            }
            if (wide) Par.For(36, Position);
            else for (int xi = 0; xi < 36; xi++) Position(xi);
            if (wide)
                Par.ForRange(s.OutC, 8, (o0, o1) =>
                {
                    float* dd = stackalloc float[36 * L];
                    TransformOutput(g, m, mStride, tpad, outBase, rows, cols, bias, y, (int)o0, (int)o1, dd);
                });
            else TransformOutput(s, m, mStride, tpad, outBase, rows, cols, bias, y, 0, s.OutC, d);
        }
        finally
        {
            vbuf.Release();
            mbuf.Release();
        }
    }

    /// <summary>
    /// V = B^T d B for every channel and tile of the block, 16 tiles per vector: the 6x6 input patches are gathered
    /// lane-wise (zeros outside the image, and for the padding lanes past the block), then transformed in registers
    /// and stored as rows of the 36 packed B panels.
    /// </summary>
    private static void TransformInput(in Conv2dShape s, float* x, float* v, long vStride, int tpad,
        long* inBase, int* rows, int* ys, int* xs, int c0, int c1, float* d)
    {
        var kb = new KBlocks(s.InC);
        long plane = (long)s.H * s.W;
        Span<Vector512<float>> t = stackalloc Vector512<float>[36];
        Span<Vector512<float>> r6 = stackalloc Vector512<float>[6];
        for (int g0 = 0; g0 < tpad; g0 += L)
        {
            for (int c = c0; c < c1; c++)
            {
                long coff = c * plane;
                for (int j = 0; j < L; j++)
                {
                    int lane = g0 + j;
                    if (rows[lane] < 0) { for (int e = 0; e < 36; e++) d[e * L + j] = 0f; continue; }
                    int iy = ys[lane], ix = xs[lane];
                    float* src = x + inBase[lane] + coff;
                    if (iy >= 0 && ix >= 0 && iy + 6 <= s.H && ix + 6 <= s.W)
                    {
                        for (int r = 0; r < 6; r++, src += s.W)
                        {
                            float* dr = d + r * 6 * L + j;
                            dr[0] = src[0]; dr[L] = src[1]; dr[2 * L] = src[2]; dr[3 * L] = src[3]; dr[4 * L] = src[4]; dr[5 * L] = src[5];
                        }
                        continue;
                    }
                    for (int r = 0; r < 6; r++)
                        for (int k = 0; k < 6; k++)
                        {
                            int yy = iy + r, xx = ix + k;
                            d[(r * 6 + k) * L + j] = (uint)yy < (uint)s.H && (uint)xx < (uint)s.W ? src[r * s.W + k] : 0f;
                        }
                }
                // Down the columns (B^T d), then along the rows ((B^T d) B).
                for (int k = 0; k < 6; k++)
                    InputPoints(Vector512.Load(d + k * L), Vector512.Load(d + (6 + k) * L), Vector512.Load(d + (12 + k) * L),
                        Vector512.Load(d + (18 + k) * L), Vector512.Load(d + (24 + k) * L), Vector512.Load(d + (30 + k) * L), t, k, 6);
                int blk = c / kb.Size, k0 = kb.Start(blk), kc = kb.Length(blk);
                long at = GemmPacking.PanelOffset(tpad, NR, k0, kc, g0 / NR * NR) + (long)(c - k0) * NR + g0 % NR;
                for (int r = 0; r < 6; r++)
                {
                    InputPoints(t[r * 6], t[r * 6 + 1], t[r * 6 + 2], t[r * 6 + 3], t[r * 6 + 4], t[r * 6 + 5], r6, 0, 1);
                    for (int l = 0; l < 6; l++) r6[l].Store(v + (r * 6 + l) * vStride + at);
                }
            }
        }
    }

    /// <summary>B^T applied to one line of 6 inputs; outputs at o[first + i * stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputPoints(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3,
        Vector512<float> d4, Vector512<float> d5, Span<Vector512<float>> o, int first, int stride)
    {
        var four = Vector512.Create(4f);
        var a = d4 - 4f * d2;      // d4 - 4 d2
        var b = d3 - 4f * d1;      // d3 - 4 d1
        var c = d4 - d2;
        var e = 2f * (d3 - d1);
        o[first] = Vector512.FusedMultiplyAdd(four, d0, d4) - 5f * d2;
        o[first + stride] = a + b;
        o[first + 2 * stride] = a - b;
        o[first + 3 * stride] = c + e;
        o[first + 4 * stride] = c - e;
        o[first + 5 * stride] = Vector512.FusedMultiplyAdd(four, d1, d5) - 5f * d3;
    }

    /// <summary>
    /// Y = A^T M A for every output channel and tile of the block, plus the bias, scattered into the 4x4 output
    /// tiles (cut at the image's right and bottom edges).
    /// </summary>
    private static void TransformOutput(in Conv2dShape s, float* m, long mStride, int tpad, long* outBase, int* rows, int* cols,
        float* bias, float* y, int o0, int o1, float* res)
    {
        long plane = (long)s.H * s.W;
        Span<Vector512<float>> t = stackalloc Vector512<float>[24];
        Span<Vector512<float>> r4 = stackalloc Vector512<float>[4];
        for (int o = o0; o < o1; o++)
        {
            var bv = Vector512.Create(bias != null ? bias[o] : 0f);
            for (int g0 = 0; g0 < tpad; g0 += L)
            {
                if (rows[g0] < 0) break;
                float* src = m + (long)o * tpad + g0;
                // Down the columns: 6 rows -> 4, for each of the 6 columns.
                for (int k = 0; k < 6; k++)
                    OutputPoints(Vector512.Load(src + k * mStride), Vector512.Load(src + (6 + k) * mStride), Vector512.Load(src + (12 + k) * mStride),
                        Vector512.Load(src + (18 + k) * mStride), Vector512.Load(src + (24 + k) * mStride), Vector512.Load(src + (30 + k) * mStride), t, k, 6);
                for (int r = 0; r < 4; r++)
                {
                    OutputPoints(t[r * 6], t[r * 6 + 1], t[r * 6 + 2], t[r * 6 + 3], t[r * 6 + 4], t[r * 6 + 5], r4, 0, 1);
                    for (int c = 0; c < 4; c++) (r4[c] + bv).Store(res + (r * 4 + c) * L);
                }
                for (int j = 0; j < L; j++)
                {
                    int lane = g0 + j;
                    if (rows[lane] < 0) break;
                    float* dst = y + outBase[lane] + o * plane;
                    int nr = rows[lane], nc = cols[lane];
                    if (nr == 4 && nc == 4)
                    {
                        for (int r = 0; r < 4; r++, dst += s.W)
                        {
                            float* sr = res + r * 4 * L + j;
                            dst[0] = sr[0]; dst[1] = sr[L]; dst[2] = sr[2 * L]; dst[3] = sr[3 * L];
                        }
                        continue;
                    }
                    for (int r = 0; r < nr; r++)
                        for (int c = 0; c < nc; c++) dst[r * s.W + c] = res[(r * 4 + c) * L + j];
                }
            }
        }
    }

    /// <summary>A^T applied to one line of 6 products; 4 outputs at o[first + i * stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputPoints(Vector512<float> m0, Vector512<float> m1, Vector512<float> m2, Vector512<float> m3,
        Vector512<float> m4, Vector512<float> m5, Span<Vector512<float>> o, int first, int stride)
    {
        var a = m1 + m2; var b = m1 - m2;
        var c = m3 + m4; var e = m3 - m4;
        o[first] = m0 + a + c;
        o[first + stride] = Vector512.FusedMultiplyAdd(Vector512.Create(2f), e, b);
        o[first + 2 * stride] = Vector512.FusedMultiplyAdd(Vector512.Create(4f), c, a);
        o[first + 3 * stride] = Vector512.FusedMultiplyAdd(Vector512.Create(8f), e, b) + m5;
    }
}
