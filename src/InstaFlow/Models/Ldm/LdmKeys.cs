// The LDM/CompVis single-file layout of SD-1.x (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*)
// mapped onto diffusers names, built from the UNet and VAE configs (levels, layers per block, which blocks attend)
// rather than hard-coded for SD-1.5, so smaller models of the same family map too. SD-2.x and SDXL are recognised and refused.
using InstaFlow.IO;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;

namespace InstaFlow.Models.Ldm;

public static class LdmKeys
{
    public const string UnetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string TextPrefix = "cond_stage_model.transformer.";
    public const string EmaPrefix = "model_ema.";

    /// <summary>Throws a clear "not supported" naming the key when the file is not an SD-1.x LDM checkpoint.</summary>
    public static void CheckSd1(IWeightsFile file)
    {
        var names = file.Tensors.Select(t => t.Name).ToList();
        string? Find(Func<string, bool> p) => names.FirstOrDefault(p);
        if (Find(n => n.StartsWith("conditioner.", StringComparison.Ordinal) || n.StartsWith(UnetPrefix + "label_emb.", StringComparison.Ordinal)) is string xl)
            throw new InvalidInputException($"{file.Path}: SDXL is not supported (the key '{xl}' is SDXL's); this library runs SD-1.x-family models");
        if (Find(n => n.StartsWith("cond_stage_model.model.", StringComparison.Ordinal)) is string sd2)
            throw new InvalidInputException($"{file.Path}: SD-2.x is not supported (the key '{sd2}' is SD-2's OpenCLIP text encoder); this library runs SD-1.x-family models");
        if (!names.Any(n => n.StartsWith(UnetPrefix, StringComparison.Ordinal)))
        {
            var hint = names.Any(n => n.StartsWith("down_blocks.", StringComparison.Ordinal) || n == "conv_in.weight")
                ? "it looks like a diffusers-named UNet state dict: use it with --model FOLDER --unet FILE"
                : $"its first keys are {string.Join(", ", names.Take(3).Select(n => $"'{n}'"))}";
            throw new InvalidInputException($"{file.Path}: not an SD-1.x single-file checkpoint (no '{UnetPrefix}*' keys); {hint}");
        }
        foreach (var (prefix, what) in new[] { (VaePrefix, "VAE"), (TextPrefix, "CLIP text encoder") })
            if (!names.Any(n => n.StartsWith(prefix, StringComparison.Ordinal)))
                throw new InvalidInputException($"{file.Path}: the single file has no {what} weights ('{prefix}*'); only whole SD-1.x checkpoints load as --model FILE");
    }

    /// <summary>
    /// The UNet under diffusers names. ema: the EMA copies instead (LitEma names a parameter by its dotted name with
    /// the dots removed: model.diffusion_model.a.b -> model_ema.diffusion_modelab).
    /// </summary>
    public static RenamedWeights Unet(IWeightsFile file, UNet2DConditionConfig c, bool ema)
    {
        var table = UnetTable(c);
        var names = file.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        if (ema && !names.Any(n => n.StartsWith(EmaPrefix, StringComparison.Ordinal) && n != EmaPrefix + "decay" && n != EmaPrefix + "num_updates"))
            throw new InvalidInputException($"{file.Path}: --ema asks for EMA weights but the file has no '{EmaPrefix}*' tensors; drop --ema");
        var pairs = new List<(string, string)>();
        foreach (var name in names.Where(n => n.StartsWith(UnetPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var ldm = name[UnetPrefix.Length..];
            var source = name;
            if (ema)
            {
                source = EmaPrefix + ("diffusion_model." + ldm).Replace(".", "");
                if (!names.Contains(source))
                    throw new InvalidInputException($"{file.Path}: --ema: the EMA copy '{source}' of '{name}' is missing; the checkpoint's EMA weights are incomplete (drop --ema)");
            }
            pairs.Add((MapUnet(ldm, table), source));
        }
        return new RenamedWeights(file, file.Path + (ema ? " (EMA UNet)" : " (UNet)"), pairs);
    }

    public static RenamedWeights Vae(IWeightsFile file, AutoencoderKLConfig c)
    {
        var table = VaeTable(c);
        var pairs = file.Tensors.Select(t => t.Name).Where(n => n.StartsWith(VaePrefix, StringComparison.Ordinal))
            .Select(n => (MapPrefix(n[VaePrefix.Length..], table, null), n));
        return new RenamedWeights(file, file.Path + " (VAE)", pairs);
    }

    public static RenamedWeights TextEncoder(IWeightsFile file)
    {
        // transformers < 4.x saved CLIPTextModel without the text_model. level.
        var pairs = file.Tensors.Select(t => t.Name).Where(n => n.StartsWith(TextPrefix, StringComparison.Ordinal))
            .Select(n => n[TextPrefix.Length..] is var k && k.StartsWith("text_model.", StringComparison.Ordinal) ? (k, n) : ("text_model." + k, n));
        return new RenamedWeights(file, file.Path + " (text encoder)", pairs);
    }

    internal static readonly (string Ldm, string Diffusers)[] ResnetNames =
    {
        ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
    };

    /// <summary>LDM prefix -> (diffusers prefix, is a resnet): diffusers' conversion table, generalised to any level count.</summary>
    public static Dictionary<string, (string Diffusers, bool Resnet)> UnetTable(UNet2DConditionConfig c)
    {
        int levels = c.BlockOutChannels.Length, n = c.LayersPerBlock;
        var t = new Dictionary<string, (string, bool)>(StringComparer.Ordinal)
        {
            ["time_embed.0."] = ("time_embedding.linear_1.", false), ["time_embed.2."] = ("time_embedding.linear_2.", false),
            ["input_blocks.0.0."] = ("conv_in.", false), ["out.0."] = ("conv_norm_out.", false), ["out.2."] = ("conv_out.", false),
            ["middle_block.0."] = ("mid_block.resnets.0.", true), ["middle_block.1."] = ("mid_block.attentions.0.", false),
            ["middle_block.2."] = ("mid_block.resnets.1.", true),
        };
        for (int i = 0; i < levels; i++)
        {
            bool downAttn = c.DownBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            bool upAttn = c.UpBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < n; j++)
            {
                int block = (n + 1) * i + j + 1;
                t[$"input_blocks.{block}.0."] = ($"down_blocks.{i}.resnets.{j}.", true);
                if (downAttn) t[$"input_blocks.{block}.1."] = ($"down_blocks.{i}.attentions.{j}.", false);
            }
            if (i < levels - 1) t[$"input_blocks.{(n + 1) * (i + 1)}.0.op."] = ($"down_blocks.{i}.downsamplers.0.conv.", false);
            for (int j = 0; j <= n; j++)
            {
                int block = (n + 1) * i + j;
                t[$"output_blocks.{block}.0."] = ($"up_blocks.{i}.resnets.{j}.", true);
                if (upAttn) t[$"output_blocks.{block}.1."] = ($"up_blocks.{i}.attentions.{j}.", false);
            }
            if (i < levels - 1) t[$"output_blocks.{(n + 1) * i + n}.{(upAttn ? 2 : 1)}."] = ($"up_blocks.{i}.upsamplers.0.", false);
        }
        return t;
    }

    private static string MapUnet(string ldm, Dictionary<string, (string Diffusers, bool Resnet)> table)
    {
        // Longest matching prefix: input_blocks.3.0.op. must win over a shorter entry of the same block.
        int best = -1;
        string? key = null;
        foreach (var k in table.Keys)
            if (k.Length > best && ldm.StartsWith(k, StringComparison.Ordinal)) { best = k.Length; key = k; }
        // An unknown key keeps a marker name, so the loader reports it as unexpected instead of silently dropping it.
        if (key == null) return "(ldm) " + ldm;
        var (prefix, resnet) = table[key];
        var rest = ldm[key.Length..];
        if (resnet)
            foreach (var (from, to) in ResnetNames)
                if (rest.StartsWith(from, StringComparison.Ordinal)) { rest = to + rest[from.Length..]; break; }
        return prefix + rest;
    }

    /// <summary>LDM prefix -> diffusers prefix for the VAE (LDM numbers decoder levels from the highest resolution).</summary>
    public static (string Ldm, string Diffusers)[] VaeTable(AutoencoderKLConfig c)
    {
        int levels = c.BlockOutChannels.Length, n = c.LayersPerBlock;
        var t = new List<(string, string)>();
        foreach (var part in new[] { "encoder", "decoder" })
        {
            t.Add(($"{part}.mid.block_1.", $"{part}.mid_block.resnets.0."));
            t.Add(($"{part}.mid.block_2.", $"{part}.mid_block.resnets.1."));
            t.Add(($"{part}.mid.attn_1.norm.", $"{part}.mid_block.attentions.0.group_norm."));
            t.Add(($"{part}.mid.attn_1.q.", $"{part}.mid_block.attentions.0.to_q."));
            t.Add(($"{part}.mid.attn_1.k.", $"{part}.mid_block.attentions.0.to_k."));
            t.Add(($"{part}.mid.attn_1.v.", $"{part}.mid_block.attentions.0.to_v."));
            t.Add(($"{part}.mid.attn_1.proj_out.", $"{part}.mid_block.attentions.0.to_out.0."));
            t.Add(($"{part}.norm_out.", $"{part}.conv_norm_out."));
        }
        for (int i = 0; i < levels; i++)
        {
            for (int j = 0; j < n; j++) t.Add(($"encoder.down.{i}.block.{j}.", $"encoder.down_blocks.{i}.resnets.{j}."));
            t.Add(($"encoder.down.{i}.downsample.", $"encoder.down_blocks.{i}.downsamplers.0."));
            int ldm = levels - 1 - i;
            for (int j = 0; j <= n; j++) t.Add(($"decoder.up.{ldm}.block.{j}.", $"decoder.up_blocks.{i}.resnets.{j}."));
            t.Add(($"decoder.up.{ldm}.upsample.", $"decoder.up_blocks.{i}.upsamplers.0."));
        }
        return t.ToArray();
    }

    private static string MapPrefix(string key, (string Ldm, string Diffusers)[] table, string? unknownMarker)
    {
        foreach (var (ldm, diffusers) in table)
            if (key.StartsWith(ldm, StringComparison.Ordinal))
                return diffusers + key[ldm.Length..].Replace("nin_shortcut.", "conv_shortcut.", StringComparison.Ordinal);
        // conv_in, conv_out, quant_conv, post_quant_conv keep their names.
        return unknownMarker + key;
    }
}
