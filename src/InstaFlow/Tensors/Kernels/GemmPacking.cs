// Packing of GEMM operands into the micro-kernel's panel layouts: A as MR-row panels (k-major, alpha folded in),
// B as NR-column panels from any source (a dense matrix here, image patches in Conv2dPatches).
using System.Runtime.CompilerServices;

namespace InstaFlow.Tensors.Kernels;

/// <summary>
/// Supplies one NR-wide B panel, p[p * NR + j] = op(B)[k0 + p, j0 + j] for j &lt; cols and 0 for cols &lt;= j &lt; NR:
/// either packed into scratch (KC x NR floats) or found already packed.
/// </summary>
public unsafe interface IPanelSource
{
    float* Panel(int k0, int kc, int j0, int cols, float* scratch);
}

/// <summary>A dense row-major B (or B^T when Trans): element (p, j) is b[p * ldb + j] (or b[j * ldb + p]).</summary>
public readonly unsafe struct DenseSource(float* b, int ldb, bool trans) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        if (!trans)
        {
            for (int p = 0; p < kc; p++)
            {
                float* s = b + (long)(k0 + p) * ldb + j0, d = dst + p * NR;
                if (cols == NR) Unsafe.CopyBlockUnaligned(d, s, NR * sizeof(float));
                else
                {
                    Unsafe.CopyBlockUnaligned(d, s, (uint)cols * sizeof(float));
                    new Span<float>(d + cols, NR - cols).Clear();
                }
            }
            return dst;
        }
        for (int j = 0; j < cols; j++)
        {
            float* s = b + (long)(j0 + j) * ldb + k0, d = dst + j;
            for (int p = 0; p < kc; p++) d[p * NR] = s[p];
        }
        if (cols < NR)
            for (int p = 0; p < kc; p++) new Span<float>(dst + p * NR + cols, NR - cols).Clear();
        return dst;
    }
}

/// <summary>B already packed by <see cref="GemmPacking.PackB"/>: panels are found, not copied.</summary>
public readonly unsafe struct PackedSource(float* packed, int n) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* scratch) =>
        packed + GemmPacking.PanelOffset(n, GemmKernels.NR, k0, kc, j0);
}

/// <summary>K split into equal blocks of at most KC, so a B block (KC x tile width) stays in L2.</summary>
internal readonly struct KBlocks
{
    public const int KC = 256;
    public readonly int Count, Size, K;

    public KBlocks(int k)
    {
        K = k;
        Count = Math.Max(1, (k + KC - 1) / KC);
        Size = (k + Count - 1) / Count;
    }

    public int Start(int b) => b * Size;
    public int Length(int b) => Math.Min(Size, K - b * Size);
}

internal static unsafe class GemmPacking
{
    /// <summary>Floats needed to hold an m x k operand packed in panels of width: whole panels, every K block.</summary>
    public static long PackedSize(int m, int k, int width) => (long)RoundUp(m, width) * k;

    /// <summary>Where the panel holding row/column i0 of K block (k0, kc) starts: blocks in K order, panels inside.</summary>
    public static long PanelOffset(int size, int width, int k0, int kc, int i0) => (long)RoundUp(size, width) * k0 + (long)i0 * kc;

    /// <summary>Packs op(B) (k x n) once, for GEMMs whose M tiles would otherwise each pack it again.</summary>
    public static void PackB(DenseSource source, int n, int k, float* dst)
    {
        const int NR = GemmKernels.NR;
        var kb = new KBlocks(k);
        int panels = (n + NR - 1) / NR;
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            for (int jp = (int)p0; jp < p1; jp++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk), j0 = jp * NR;
                    source.Panel(k0, kc, j0, Math.Min(NR, n - j0), dst + PanelOffset(n, NR, k0, kc, j0));
                }
        });
    }

    public static int RoundUp(int x, int to) => (x + to - 1) / to * to;

    /// <summary>
    /// Packs alpha * op(A) so that K block b's panel ir starts at dst + panels * MR * start(b) + ir * MR * length(b),
    /// element (i, p) at [p * MR + i]; rows past m are zero.
    /// </summary>
    public static void PackA(bool transA, float* a, int lda, int m, int k, float alpha, float* dst)
    {
        const int MR = GemmKernels.MR;
        int panels = (m + MR - 1) / MR;
        var kb = new KBlocks(k);
        Par.ForRange(panels, 8, (p0, p1) =>
        {
            for (int ir = (int)p0; ir < p1; ir++)
                for (int blk = 0; blk < kb.Count; blk++)
                {
                    int k0 = kb.Start(blk), kc = kb.Length(blk);
                    float* d = dst + PanelOffset(m, MR, k0, kc, ir * MR);
                    for (int i = 0; i < MR; i++)
                    {
                        int row = ir * MR + i;
                        if (row >= m)
                        {
                            for (int p = 0; p < kc; p++) d[p * MR + i] = 0f;
                            continue;
                        }
                        long step = transA ? lda : 1;
                        float* s = transA ? a + (long)k0 * lda + row : a + (long)row * lda + k0;
                        for (int p = 0; p < kc; p++) d[p * MR + i] = alpha * s[p * step];
                    }
                }
        });
    }
}
