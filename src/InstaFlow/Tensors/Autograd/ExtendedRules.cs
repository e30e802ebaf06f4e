// Backward rules for the layer ops (conv, norms, upsample, embedding, attention); the dispatcher lives in BackwardRules.
namespace InstaFlow.Tensors.Autograd;

internal static partial class ExtendedRules
{
    public static Tensor?[] Apply(TapeNode n, Tensor g, Tensor output) => n.Op switch
    {
        _ => throw new NotSupportedException($"no backward rule for {n.Op}"),
    };
}
