// Winograd F(4x4, 3x3) and F(6x6, 3x3) forward convolution for 3x3, stride-1, padding-1 layers: 36 or 64 GEMMs with
// 4x or 5.06x fewer multiply-adds than the direct implicit GEMM; its input transform can also apply a group norm +
// SiLU or read a nearest-2x upsampling as it gathers. Hand-written because no .NET library has it.
using System.Runtime.Intrinsics;

namespace InstaFlow.Tensors.Kernels;

/// <summary>When <see cref="Ops.Conv2d(Tensor, Tensor, Tensor?, int, int)"/> takes the Winograd path.</summary>
public enum WinogradMode { Auto, Always, Never }

/// <summary>
/// Y = A^T [ (G g G^T) . (B^T d B) ] A over Alpha x Alpha input tiles that give m x m output tiles (the algorithms are
/// in WinogradTiles.cs: F(4x4) with Alpha = 6, F(6x6) with Alpha = 8). F(6x6) does 1.27x fewer products but rounds
/// worse, and wastes more work on partial tiles, so it is taken only for large images (<see cref="TileFor"/>).
/// <para>
/// Work is cut into blocks of output tiles. A block is transformed (Alpha^2 matrices InC x tiles, written straight
/// into the GEMM's packed-B panel layout), multiplied by the Alpha^2 transformed weight matrices (OutC x InC) with the
/// packed micro-kernel, and transformed back into the output, all by one thread, so the block's buffers stay near L2.
/// Blocks run in parallel. The weight transform U = G g G^T is redone on every call (small next to the GEMMs at
/// the shapes the heuristic picks): U is 4-7x the size of the weights (36 or 64 vs 9 numbers per filter), so caching
/// it for every layer of SD-1.5 would add gigabytes. Only weights that opt in (<see cref="WeightPack"/>) keep theirs.
/// </para>
/// </summary>
public static unsafe class Conv2dWinograd
{
    private const int MR = GemmKernels.MR, NR = GemmKernels.NR;
    /// <summary>Tiles per vector: the transforms run on 16 tiles at once, one per lane.</summary>
    private const int L = 16;

    /// <summary>Auto by default; INSTAFLOW_WINOGRAD=1/on forces it for every qualifying shape, 0/off disables it.</summary>
    public static WinogradMode Mode
    {
        get => ModeSet.Value ?? ModeDefault;
        set => ModeSet.Value = value;
    }

    // Set values hold for the setting flow (its thread and the tasks it starts), so a test or benchmark that switches
    // the path cannot change the convs another test is running at the same time; the environment's value is global.
    private static readonly WinogradMode ModeDefault = ModeFromEnvironment();
    private static readonly AsyncLocal<WinogradMode?> ModeSet = new();

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
    /// Whether a conv's weight gradient should take <see cref="Conv2dWinogradWeightGrad"/> under <see cref="Mode"/>: where
    /// it fits, and in Auto with AVX-512 where InC OutC / (InC + OutC) is at least 40. Its GEMMs cost InC x OutC per
    /// tile and its transforms InC + OutC. Against the patch GEMM (batch 32, 2 threads, docs/PERFORMANCE.md) it took
    /// 0.79-1.19x the time for 64 -> 64 channels at 16x16 (32), 0.56-0.81x for 192 -> 64 (48), 0.61-0.76x for 128 ->
    /// 128 at 8x8 and 0.79-0.95x at 4x4 (64).
    /// </summary>
    public static bool ShouldUseForWeightGradient(in Conv2dShape s)
    {
        if (!Conv2dWinogradWeightGrad.Fits(s)) return false;
        return Mode switch
        {
            WinogradMode.Always => true,
            WinogradMode.Never => false,
            _ => Vector512.IsHardwareAccelerated && (long)s.InC * s.OutC >= 40L * (s.InC + s.OutC),
        };
    }

    /// <summary>
    /// Measured on the 2-core AVX-512 machine (docs/PERFORMANCE.md): Winograd wins once both channel counts fill
    /// the GEMM (K = InC and M = OutC of at least 64) and there are enough tiles (over the batch) to amortize the
    /// transformed weights, which must be streamed once per block; without AVX-512 the lane-wise transforms run
    /// in software, so the direct path stays.
    /// </summary>
    private static bool Faster(in Conv2dShape s)
    {
        if (!Vector512.IsHardwareAccelerated) return false;
        long tiles = (long)s.Batch * ((s.H + 3) / 4) * ((s.W + 3) / 4);
        if (s.InC < 64 || s.OutC < 64) return false;
        // From 32 tiles where U is small: the training networks' 4x4 level (a batch of 32 one-tile images, 128
        // channels) took 0.86 ms against the direct conv's 1.65-2.1
        return tiles >= 64 || tiles >= 32 && 36L * s.InC * s.OutC * sizeof(float) <= 8L * 1024 * 1024;
    }

    /// <summary>
    /// F(6x6) for images of at least 64x64 where both would run as one wide block (F(6x6)'s fewer products win there),
    /// and from 128x128 where it streams no more transformed weights than F(4x4); F(4x4) elsewhere. Every block of
    /// tiles reads all of U (F(6x6)'s is 1.78x F(4x4)'s) while F(6x6) needs fewer blocks
    /// (2.25x fewer tiles), so which one moves less depends on the channels and the image: the VAE decoder's 256 and
    /// 512 pixel levels favour F(6x6) (0.84-0.97x F(4x4)'s time on 2 threads, 512 channels at 256x256 0.84-0.91x), 512
    /// channels at 128x128 do not (1.04-1.17x). On small images F(6x6)'s partial tiles waste more (36x36 computed for
    /// 32x32). docs/PERFORMANCE.md has the timings. The choice is made for one image, so an image comes out with the same
    /// bits whatever batch it is in, and the thread count plays no part. <see cref="TileOverride"/> (tests, benchmarks)
    /// or INSTAFLOW_WINOGRAD_TILE=4/6 pins one.
    /// </summary>
    public static WinogradTile TileFor(in Conv2dShape s)
    {
        if (TileOverride is { } pinned) return pinned;
        if (s.H < 64 || s.W < 64) return WinogradTile.F4;
        var one = s with { Batch = 1 };
        // Where both would run as one wide block each reads U once, and F(6x6)'s fewer products win (the VAE's 512
        // channels at 64x64: 0.86x F(4x4)'s time). The UNet's 320 channels at 64x64 stay F(4x4): 0.91x the time there
        // is 11 ms a step, for 1.7x the error against the reference.
        if (WideShape(one, Tiles(one, WinogradTile.F6), 64) && WideShape(one, Tiles(one, WinogradTile.F4), 36)) return WinogradTile.F6;
        if (s.H < 128 || s.W < 128) return WinogradTile.F4;
        return WeightTraffic(one, WinogradTile.F6) <= WeightTraffic(one, WinogradTile.F4) ? WinogradTile.F6 : WinogradTile.F4;
    }

    private static long Tiles(in Conv2dShape s, WinogradTile tile)
    {
        int m = (int)tile;
        return (long)s.Batch * ((s.H + m - 1) / m) * ((s.W + m - 1) / m);
    }

    /// <summary>Bytes of transformed weights one forward call streams with this algorithm: U once per block of tiles.</summary>
    internal static long WeightTraffic(in Conv2dShape s, WinogradTile tile)
    {
        int points = Points(tile);
        long tiles = Tiles(s, tile);
        long u = (long)points * s.InC * s.OutC * sizeof(float);
        return WideShape(s, tiles, points) ? u : u * Blocks(tiles, BlockTiles(s.InC, s.OutC, tiles, points));
    }

    /// <summary>When set, every Winograd conv of the setting flow runs this algorithm (as <see cref="Mode"/>, per flow).</summary>
    public static WinogradTile? TileOverride
    {
        get => TileSet.Value is { } set ? set.Tile : TileDefault;
        set => TileSet.Value = new TileChoice(value);
    }

    private sealed record TileChoice(WinogradTile? Tile);
    private static readonly AsyncLocal<TileChoice?> TileSet = new();
    private static readonly WinogradTile? TileDefault = Environment.GetEnvironmentVariable("INSTAFLOW_WINOGRAD_TILE")?.Trim() switch
    {
        "4" => WinogradTile.F4,
        "6" => WinogradTile.F6,
        _ => null,
    };

    /// <summary>
    /// Tiles per block: a multiple of 32 (one B panel), with the block's V and M under about 3 MB (at least 4 blocks
    /// per image, for both cores and a stolen one). Every block streams all of U, Alpha^2 x InC x OutC floats, for
    /// its Alpha^2 x (InC + OutC) floats of V and M per tile, so where there are tiles enough a block gets InC x OutC /
    /// (InC + OutC) tiles, where U's traffic per tile falls to V's and M's (keeping 8 blocks per image, or 4 once U
    /// outgrows its share of the L3 and each block more costs a pass over memory). F(4x4), 2 threads: 256 channels at
    /// 256x256 (32 -> 128 tiles) 0.86-0.98x in two runs; 512 channels at 128x128, 32 tiles 105 ms, 64 90, 128 83,
    /// 256 78 (docs/PERFORMANCE.md).
    /// </summary>
    internal static int BlockTiles(int inC, int outC, long tiles, int points = 36)
    {
        long perTile = (long)points * (inC + outC) * sizeof(float);
        int t = (int)Math.Clamp(3L * 1024 * 1024 / perTile / NR * NR, NR, 128);
        while (t > NR && Blocks(tiles, t) < 4) t -= NR;
        int reusing = (int)Math.Clamp((long)inC * outC / (inC + outC) / NR * NR, NR, 256);
        int minBlocks = (long)points * inC * outC * sizeof(float) > 16L * 1024 * 1024 ? 4 : 8;
        while (reusing > t && Blocks(tiles, reusing) < minBlocks) reusing -= NR;
        return Math.Max(t, reusing);
    }

    private static long Blocks(long tiles, int perBlock) => (tiles + perBlock - 1) / perBlock;

    /// <summary>
    /// Small images of wide layers (SD's UNet at 32x32: 64 tiles, 640-1280 channels, U of 59-236 MB) make too few
    /// blocks to keep both cores busy unless each block is small, and every block reads all of U from memory. There
    /// the whole image is one block whose input transform, GEMMs and output transform are each split between the
    /// threads (by channel, by matrix, by channel): U is read once. The sums are the same, so are the bits.
    /// </summary>
    internal static bool OneWideBlock(in Conv2dShape s, long tiles, int points = 36) => Par.Threads > 1 && WideShape(s, tiles, points) && !ForceBlocks;

    /// <summary>The shape part of <see cref="OneWideBlock"/>: what the choice of algorithm may use, so that it never depends on the thread count.</summary>
    private static bool WideShape(in Conv2dShape s, long tiles, int points) =>
        tiles <= 256 && (long)points * s.InC * s.OutC * sizeof(float) > 16L * 1024 * 1024;

    /// <summary>Tests set this to take the per-block path where <see cref="OneWideBlock"/> would not (same bits).</summary>
    internal static bool ForceBlocks;

    /// <summary>y = conv3x3(x, w, stride 1, padding 1) + bias (bias may be null); s must satisfy <see cref="Qualifies"/>.</summary>
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y) =>
        Forward(s, x, new StoredData((byte*)w, TensorDType.F32), bias, y, TileFor(s));

    /// <summary>
    /// The same with the weight in its stored precision (F16/BF16 taps are widened as they are transformed) and the
    /// algorithm given. prepackedU, when not null, holds w already transformed by
    /// <see cref="TransformWeights(StoredData, int, int, float*, WinogradTile)"/> for the same tile (a
    /// <see cref="WeightPack"/>), and w is not read. normSilu, when not null, holds [Batch * InC] constants of a group
    /// norm + SiLU (<see cref="Norms.GroupNormSiluAffines"/>) that the input transform applies to every tap it reads
    /// inside the image: the conv of SiLU(GroupNorm(x)) without writing that activation out and reading it back.
    /// upsampled: x is [Batch, InC, H / 2, W / 2] and the conv's input (H x W, as in s) is its nearest 2x upsampling,
    /// read through x tap by tap instead of written out at four times the size.
    /// </summary>
    internal static void Forward(in Conv2dShape s, float* x, StoredData w, float* bias, float* y, WinogradTile tile, float* prepackedU = null,
        NormSiluAffine* normSilu = null, bool upsampled = false)
    {
        if (!Qualifies(s)) throw new ArgumentException($"Conv2dWinograd: needs a 3x3 kernel, stride 1, padding 1; got {s}");
        if (upsampled && (s.H % 2 != 0 || s.W % 2 != 0)) throw new ArgumentException($"Conv2dWinograd: an upsampled input has an even size; got {s}");
        if (tile == WinogradTile.F6) Forward<WinogradF6>(s, x, w, bias, y, prepackedU, normSilu, upsampled);
        else Forward<WinogradF4>(s, x, w, bias, y, prepackedU, normSilu, upsampled);
    }

    private static void Forward<TF>(in Conv2dShape s, float* x, StoredData w, float* bias, float* y, float* prepackedU, NormSiluAffine* pro,
        bool up)
        where TF : struct, IWinogradTile
    {
        var g = s;
        int m = TF.M, points = TF.Alpha * TF.Alpha;
        int tilesX = (s.W + m - 1) / m, tilesY = (s.H + m - 1) / m;
        long tiles = (long)s.Batch * tilesX * tilesY;
        int blockTiles = BlockTiles(s.InC, s.OutC, tiles, points);
        int blocks = (int)((tiles + blockTiles - 1) / blockTiles);
        long uStride = UStride(s.OutC, s.InC);
        // The transformed weights (4-7x the weights, up to ~210 MB for SD-1.5) differ in size per layer: pooled, every
        // layer's would stay alive (+0.45 GiB peak for one image), so they share the one packed-weights buffer.
        var ubuf = prepackedU == null ? PackArena.Rent(points * uStride * sizeof(float)) : null;
        try
        {
            float* u = prepackedU;
            if (u == null)
            {
                u = (float*)ubuf!.Pointer;
                TransformWeights<TF>(g, w, u, uStride);
                Ops.InferenceMark("conv Winograd: transforming the weight");
            }
            if (OneWideBlock(s, tiles, points))
            {
                // all tiles in one block, its three phases split between the threads: U is read once, not once per block
                RunBlock<TF>(g, x, u, uStride, bias, y, 0, (int)tiles, tilesX, tilesY, pro, up, wide: true);
                return;
            }
            Par.For(blocks, blk =>
            {
                long t0 = (long)blk * blockTiles;
                int n = (int)Math.Min(blockTiles, tiles - t0);
                RunBlock<TF>(g, x, u, uStride, bias, y, t0, n, tilesX, tilesY, pro, up, wide: false);
            });
        }
        finally { ubuf?.Release(); }
    }

    private static long UStride(int outC, int inC) => Skewed(GemmPacking.PackedSize(outC, inC, MR));

    private static int Points(WinogradTile tile) => tile == WinogradTile.F6 ? 64 : 36;

    /// <summary>Floats of the transformed weight matrices of an outC x inC 3x3 layer, as Forward lays them out for tile.</summary>
    internal static long TransformedFloats(int outC, int inC, WinogradTile tile) => Points(tile) * UStride(outC, inC);

    /// <summary>U for a weight [outC, inC, 3, 3], laid out as Forward uses it for tile (TransformedFloats floats).</summary>
    internal static void TransformWeights(StoredData w, int outC, int inC, float* u, WinogradTile tile)
    {
        var s = new Conv2dShape(1, inC, 4, 4, outC, 3, 3, 1, 1, 1, 1, 1);
        if (tile == WinogradTile.F6) TransformWeights<WinogradF6>(s, w, u, UStride(outC, inC));
        else TransformWeights<WinogradF4>(s, w, u, UStride(outC, inC));
    }

    /// <summary>
    /// Distance between two of the transformed matrices: an odd number of cache lines. The transforms touch one
    /// element of each matrix at a time, and with the natural sizes (multiples of 4 KiB: 96 x 128 floats, 1284 x 1280)
    /// all fall in the same cache set, which made the 1280-channel weight transform 20x slower than it should be.
    /// </summary>
    private static long Skewed(long floats)
    {
        long lines = (floats + 15) / 16;
        return (lines | 1) * 16;
    }

    /// <summary>
    /// U = G g G^T for every (o, c), written straight into the packed-A layout of Alpha^2 OutC x InC matrices (rows
    /// past OutC zero), so the GEMMs read it as they read packed weights. Within one K block the packed layout is one
    /// contiguous run per matrix, so 16 consecutive packed entries (16 (o, c) pairs) are transformed at once and
    /// land as one vector store in each matrix.
    /// </summary>
    private static void TransformWeights<TF>(Conv2dShape s, StoredData w, float* u, long uStride) where TF : struct, IWinogradTile
    {
        var kb = new KBlocks(s.InC);
        int rowsPad = GemmPacking.RoundUp(s.OutC, MR);
        int alpha = TF.Alpha, points = alpha * alpha;
        for (int blk = 0; blk < kb.Count; blk++)
        {
            int k0 = kb.Start(blk), kc = kb.Length(blk);
            long region = (long)rowsPad * kc, start = (long)rowsPad * k0;
            long groups = (region + L - 1) / L;
            Par.ForRange(groups, 64, (g0, g1) =>
            {
                float* f = stackalloc float[9 * L];
                var gg = stackalloc Vector512<float>[3 * alpha];
                var uu = stackalloc Vector512<float>[points];
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
                    // G g: each kernel column (3 taps down) becomes Alpha values; then each of the Alpha rows likewise.
                    for (int col = 0; col < 3; col++) TF.Weight(f + col * L, 3 * L, gg + col, 3);
                    for (int row = 0; row < alpha; row++) TF.Weight((float*)(gg + row * 3), L, uu + row * alpha, 1);
                    float* dst = u + start + q0;
                    if (q0 + L <= region)
                        for (int xi = 0; xi < points; xi++) uu[xi].Store(dst + xi * uStride);
                    else
                        for (int xi = 0; xi < points; xi++)
                            for (int j = 0; j < region - q0; j++) dst[xi * uStride + j] = uu[xi].GetElement(j);
                }
            });
        }
    }

    /// <summary>
    /// One block of n tiles (global tile indices t0..t0+n, raster order over image, tile row, tile column): input
    /// transform into packed B panels, Alpha^2 GEMMs, output transform with bias.
    /// </summary>
    private static void RunBlock<TF>(in Conv2dShape s, float* x, float* u, long uStride, float* bias, float* y,
        long t0, int n, int tilesX, int tilesY, NormSiluAffine* pro, bool up, bool wide) where TF : struct, IWinogradTile
    {
        int m = TF.M, alpha = TF.Alpha, points = alpha * alpha;
        int tpad = GemmPacking.RoundUp(n, NR);
        long vStride = Skewed((long)tpad * s.InC), mStride = Skewed((long)tpad * s.OutC);
        var vbuf = NativeBuffer.Rent(points * vStride * sizeof(float));
        var mbuf = NativeBuffer.Rent(points * mStride * sizeof(float));
        // Per lane: offset of the tile's top-left input element (row and column -1) in image 0's channel 0 (upsampled:
        // of the image's first element), plus which of the Alpha x Alpha taps fall inside the image (all of them
        // except at the borders).
        long* inBase = stackalloc long[tpad];
        long* outBase = stackalloc long[tpad];
        int* rows = stackalloc int[tpad];
        int* cols = stackalloc int[tpad];
        int* ys = stackalloc int[tpad];
        int* xs = stackalloc int[tpad];
        int* imgs = stackalloc int[tpad];
        float* d = stackalloc float[points * L];
        try
        {
            float* v = (float*)vbuf.Pointer, mm = (float*)mbuf.Pointer;
            long plane = (long)s.H * s.W;
            for (int j = 0; j < tpad; j++)
            {
                if (j >= n) { rows[j] = -1; imgs[j] = imgs[n - 1]; continue; }
                long t = t0 + j;
                int b = (int)(t / ((long)tilesX * tilesY)), rest = (int)(t % ((long)tilesX * tilesY));
                imgs[j] = b;
                int ty = rest / tilesX, tx = rest % tilesX;
                ys[j] = m * ty - 1; xs[j] = m * tx - 1;
                inBase[j] = up ? b * s.InC * (plane / 4) : b * s.InC * plane + (long)ys[j] * s.W + xs[j];
                outBase[j] = b * s.OutC * plane + (long)(m * ty) * s.W + m * tx;
                rows[j] = Math.Min(m, s.H - m * ty);
                cols[j] = Math.Min(m, s.W - m * tx);
            }
            var g = s;
            if (wide)
                Par.ForRange(s.InC, 8, (c0, c1) =>
                {
                    float* dd = stackalloc float[points * L];
                    TransformInput<TF>(g, x, v, vStride, tpad, inBase, rows, ys, xs, imgs, pro, up, (int)c0, (int)c1, dd);
                });
            else TransformInput<TF>(s, x, v, vStride, tpad, inBase, rows, ys, xs, imgs, pro, up, 0, s.InC, d);
            var kb = new KBlocks(s.InC);
            void Position(int xi)
            {
                float* uxi = u + xi * uStride, vxi = v + xi * vStride, mxi = mm + xi * mStride;
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
            if (wide) Par.For(points, Position);
            else for (int xi = 0; xi < points; xi++) Position(xi);
            if (wide)
                Par.ForRange(s.OutC, 8, (o0, o1) =>
                {
                    float* dd = stackalloc float[points * L];
                    TransformOutput<TF>(g, mm, mStride, tpad, outBase, rows, cols, bias, y, (int)o0, (int)o1, dd);
                });
            else TransformOutput<TF>(s, mm, mStride, tpad, outBase, rows, cols, bias, y, 0, s.OutC, d);
        }
        finally
        {
            vbuf.Release();
            mbuf.Release();
        }
    }

    /// <summary>
    /// V = B^T d B for every channel and tile of the block, 16 tiles per vector: the Alpha x Alpha input patches are
    /// gathered lane-wise (zeros outside the image, and for the padding lanes past the block), then transformed in
    /// registers and stored as rows of the packed B panels. With pro, the gathered taps are first activated (see
    /// <see cref="Activate"/>); with up, each tap (y, x) is read from the half-size map at (y / 2, x / 2).
    /// </summary>
    private static void TransformInput<TF>(in Conv2dShape s, float* x, float* v, long vStride, int tpad,
        long* inBase, int* rows, int* ys, int* xs, int* imgs, NormSiluAffine* pro, bool up, int c0, int c1, float* d) where TF : struct, IWinogradTile
    {
        int alpha = TF.Alpha;
        var kb = new KBlocks(s.InC);
        long plane = up ? (long)s.H * s.W / 4 : (long)s.H * s.W;
        int halfW = s.W / 2;
        var t = stackalloc Vector512<float>[alpha * alpha];
        var line = stackalloc Vector512<float>[alpha];
        for (int g0 = 0; g0 < tpad; g0 += L)
        {
            for (int c = c0; c < c1; c++)
            {
                long coff = c * plane;
                uint edge = 0; // lanes with taps outside the image (zero) or past the block
                for (int j = 0; j < L; j++)
                {
                    int lane = g0 + j;
                    if (rows[lane] < 0) { for (int e = 0; e < alpha * alpha; e++) d[e * L + j] = 0f; edge |= 1u << j; continue; }
                    int iy = ys[lane], ix = xs[lane];
                    float* src = x + inBase[lane] + coff;
                    bool inside = iy >= 0 && ix >= 0 && iy + alpha <= s.H && ix + alpha <= s.W;
                    if (up)
                    {
                        if (!inside) edge |= 1u << j;
                        for (int r = 0; r < alpha; r++)
                        {
                            int yy = iy + r;
                            float* dr = d + r * alpha * L + j;
                            if ((uint)yy >= (uint)s.H) { for (int k = 0; k < alpha; k++) dr[k * L] = 0f; continue; }
                            float* srow = src + (long)(yy >> 1) * halfW;
                            for (int k = 0; k < alpha; k++)
                            {
                                int xx = ix + k;
                                dr[k * L] = (uint)xx < (uint)s.W ? srow[xx >> 1] : 0f;
                            }
                        }
                        continue;
                    }
                    if (inside)
                    {
                        for (int r = 0; r < alpha; r++, src += s.W)
                        {
                            float* dr = d + r * alpha * L + j;
                            for (int k = 0; k < alpha; k++) dr[k * L] = src[k];
                        }
                        continue;
                    }
                    edge |= 1u << j;
                    for (int r = 0; r < alpha; r++)
                        for (int k = 0; k < alpha; k++)
                        {
                            int yy = iy + r, xx = ix + k;
                            d[(r * alpha + k) * L + j] = (uint)yy < (uint)s.H && (uint)xx < (uint)s.W ? src[r * s.W + k] : 0f;
                        }
                }
                if (pro != null) Activate(s, alpha, d, pro, c, g0, imgs, rows, ys, xs, edge);
                // Down the columns (B^T d), then along the rows ((B^T d) B).
                for (int k = 0; k < alpha; k++) TF.Input(d + k * L, alpha * L, t + k, alpha);
                int blk = c / kb.Size, k0 = kb.Start(blk), kc = kb.Length(blk);
                long at = GemmPacking.PanelOffset(tpad, NR, k0, kc, g0 / NR * NR) + (long)(c - k0) * NR + g0 % NR;
                for (int r = 0; r < alpha; r++)
                {
                    TF.Input((float*)(t + r * alpha), L, line, 1);
                    for (int l = 0; l < alpha; l++) line[l].Store(v + (r * alpha + l) * vStride + at);
                }
            }
        }
    }

    /// <summary>
    /// Applies channel c's group norm + SiLU to the Alpha x Alpha taps of 16 lanes (d: [tap][lane]), each lane with
    /// its image's constants, then zeroes again the taps that are padding: the conv pads the activation, not x. Every
    /// tap goes through <see cref="NormSiluAffine.Apply"/>, as the unfused pass computes each element once.
    /// </summary>
    private static void Activate(in Conv2dShape s, int alpha, float* d, NormSiluAffine* pro, int c, int g0, int* imgs, int* rows,
        int* ys, int* xs, uint edge)
    {
        Vector512<float> vs, vd, va, vb;
        if (imgs[g0] == imgs[g0 + L - 1])
        {
            var p = pro[(long)imgs[g0] * s.InC + c];
            vs = Vector512.Create(p.Shift); vd = Vector512.Create(p.Delta); va = Vector512.Create(p.A); vb = Vector512.Create(p.B);
        }
        else
        {
            // the block spans two images (or more): constants lane by lane
            float* k = stackalloc float[4 * L];
            for (int j = 0; j < L; j++)
            {
                var p = pro[(long)imgs[g0 + j] * s.InC + c];
                k[j] = p.Shift; k[L + j] = p.Delta; k[2 * L + j] = p.A; k[3 * L + j] = p.B;
            }
            vs = Vector512.Load(k); vd = Vector512.Load(k + L); va = Vector512.Load(k + 2 * L); vb = Vector512.Load(k + 3 * L);
        }
        int taps = alpha * alpha;
        for (int e = 0; e < taps; e++) NormSiluAffine.Apply(Vector512.Load(d + e * L), vs, vd, va, vb).Store(d + e * L);
        while (edge != 0)
        {
            int j = System.Numerics.BitOperations.TrailingZeroCount(edge);
            edge &= edge - 1;
            int lane = g0 + j;
            if (rows[lane] < 0) { for (int e = 0; e < taps; e++) d[e * L + j] = 0f; continue; }
            for (int r = 0; r < alpha; r++)
                for (int k = 0; k < alpha; k++)
                {
                    int yy = ys[lane] + r, xx = xs[lane] + k;
                    if ((uint)yy >= (uint)s.H || (uint)xx >= (uint)s.W) d[(r * alpha + k) * L + j] = 0f;
                }
        }
    }

    /// <summary>
    /// Y = A^T M A for every output channel and tile of the block, plus the bias, scattered into the m x m output
    /// tiles (cut at the image's right and bottom edges).
    /// </summary>
    private static void TransformOutput<TF>(in Conv2dShape s, float* mm, long mStride, int tpad, long* outBase, int* rows, int* cols,
        float* bias, float* y, int o0, int o1, float* res) where TF : struct, IWinogradTile
    {
        int m = TF.M, alpha = TF.Alpha;
        long plane = (long)s.H * s.W;
        var t = stackalloc Vector512<float>[m * alpha];
        var line = stackalloc Vector512<float>[m];
        for (int o = o0; o < o1; o++)
        {
            var bv = Vector512.Create(bias != null ? bias[o] : 0f);
            for (int g0 = 0; g0 < tpad; g0 += L)
            {
                if (rows[g0] < 0) break;
                float* src = mm + (long)o * tpad + g0;
                // Down the columns: Alpha rows -> m, for each of the Alpha columns.
                for (int k = 0; k < alpha; k++) TF.Output(src + k * mStride, alpha * mStride, t + k, alpha);
                for (int r = 0; r < m; r++)
                {
                    TF.Output((float*)(t + r * alpha), L, line, 1);
                    for (int c = 0; c < m; c++) (line[c] + bv).Store(res + (r * m + c) * L);
                }
                for (int j = 0; j < L; j++)
                {
                    int lane = g0 + j;
                    if (rows[lane] < 0) break;
                    float* dst = y + outBase[lane] + o * plane;
                    int nr = rows[lane], nc = cols[lane];
                    for (int r = 0; r < nr; r++)
                        for (int c = 0; c < nc; c++) dst[r * s.W + c] = res[(r * m + c) * L + j];
                }
            }
        }
    }
}
