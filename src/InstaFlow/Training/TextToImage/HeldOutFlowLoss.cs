// The 1-RF's held-out loss: the rectified-flow loss on the eval split's latents and captions, with noise, times and
// caption choices drawn from a fixed seed, so that every measurement of a run sees the same samples. Read next to the
// training loss it shows when a model starts to memorize its training images.
using InstaFlow.Flow;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Training.TextToImage;

internal sealed class HeldOutFlowLoss
{
    // 12 batches of 64: 768 draws over the 190 held-out images, about 3 noise/time draws per image.
    private const int Batch = 64, Batches = 12;
    private readonly IPairSource _pairs;
    private readonly TextToImageVelocity _live;
    // The EMA weights are measured in a second network, so measuring never touches the training state.
    private readonly TextToImageVelocity _averaged;
    private readonly ulong _seed;

    private HeldOutFlowLoss(IPairSource pairs, TextToImageVelocity live, TextToImageVelocity averaged, ulong seed)
    {
        _pairs = pairs; _live = live; _averaged = averaged; _seed = seed;
    }

    public static HeldOutFlowLoss Create(TwemojiImages data, AutoencoderKL vae, ClipTokenizer tokenizer, FlowArchitecture a, TextToImageVelocity live, ulong seed)
    {
        if (data.EvalIndices.Length == 0) throw new InvalidInputException("--eval-every measures a held-out loss, but the dataset has no held-out (split eval) images");
        var captions = CaptionTable.Build(data.Items, data.EvalIndices, tokenizer, a.MaxTokens);
        var latents = VaeTraining.EncodeMeans(vae, data.Images, data.EvalIndices);
        foreach (ref var v in latents.Span) v *= vae.Config.ScalingFactor;
        var rowOfItem = new Dictionary<int, int>();
        for (int r = 0; r < data.EvalIndices.Length; r++) rowOfItem[data.EvalIndices[r]] = r;
        var pairs = new IndependentCoupling(latents.ShapeArray()[1..], (rng, b) =>
        {
            var caps = captions.DrawCaptions(rng, b);
            return (TwemojiImages.Gather(latents, caps.Select(c => rowOfItem[captions.Items[c]]).ToArray()), captions.Lookup(caps));
        });
        var averaged = TextToImageTraining.NewNetwork(a, vae.Config, tokenizer.VocabSize, seed);
        // a different seed from the training generator's, so the held-out draws are not the first training batches' draws
        return new HeldOutFlowLoss(pairs, live, averaged, seed ^ 0x5EED_4E1D_0000_0001UL);
    }

    /// <summary>"heldout_loss": of the EMA weights (the ones exported) when the run keeps an EMA, else of the live ones.</summary>
    public IReadOnlyList<(string Name, double Value)> Measure(Trainer trainer)
    {
        var net = _live;
        if (trainer.Ema is { } ema)
        {
            int i = 0;
            foreach (var p in _averaged.Parameters()) p.Value.CopyFrom(ema.Shadow[i++]);
            net = _averaged;
        }
        var objective = new RectifiedFlowObjective(new FlowModel(net, FlowConvention.InstaFlow), _pairs, new UniformTime(), Batch);
        var rng = new TorchGenerator(_seed);
        using var _ = GradMode.NoGrad();
        double sum = 0;
        for (int b = 0; b < Batches; b++)
        {
            using var scope = TensorScope.Begin();
            sum += objective.Loss(rng).Item();
        }
        return [("heldout_loss", sum / Batches)];
    }
}
