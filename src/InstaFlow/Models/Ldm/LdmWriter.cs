// Writes SD-1.x networks as one LDM/CompVis single file (model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.transformer.*), the inverse of LdmKeys: for benchmarks of single-file loading (a full-size random
// SD-1.5 checkpoint) and round-trip tests. The VAE's attention projections are stored as [C, C, 1, 1] convs, as LDM does.
using InstaFlow.IO;
using InstaFlow.Models.Clip;
using InstaFlow.Models.Unet;
using InstaFlow.Models.Vae;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Ldm;

public static class LdmWriter
{
    public static void Write(string path, ClipTextModel text, UNet2DConditionModel unet, AutoencoderKL vae, SafeTensorDType dtype = SafeTensorDType.F32)
    {
        var entries = new List<(string, Tensor)>();
        foreach (var (name, p) in unet.NamedParameters()) entries.Add((LdmKeys.UnetPrefix + UnetKey(name, LdmKeys.UnetTable(unet.Config)), p.Value));
        var vaeTable = LdmKeys.VaeTable(vae.Config);
        foreach (var (name, p) in vae.NamedParameters())
        {
            var key = VaeKey(name, vaeTable);
            bool attnProjection = key.Contains(".attn_1.", StringComparison.Ordinal) && key.EndsWith(".weight", StringComparison.Ordinal) && p.Value.Rank == 2;
            entries.Add((LdmKeys.VaePrefix + key, attnProjection ? p.Value.Reshape(p.Value.Dim(0), p.Value.Dim(1), 1, 1) : p.Value));
        }
        foreach (var (name, p) in text.NamedParameters()) entries.Add((LdmKeys.TextPrefix + name, p.Value));
        SafeTensors.Save(path, entries, dtype);
    }

    /// <summary>A diffusers UNet parameter name -> its LDM name (without the model.diffusion_model. prefix).</summary>
    internal static string UnetKey(string diffusers, Dictionary<string, (string Diffusers, bool Resnet)> table)
    {
        // longest diffusers prefix, as LdmKeys takes the longest LDM prefix
        string? best = null;
        foreach (var (ldm, (prefix, _)) in table)
            if (diffusers.StartsWith(prefix, StringComparison.Ordinal) && (best == null || prefix.Length > table[best].Diffusers.Length)) best = ldm;
        if (best == null) throw new InvalidOperationException($"LdmWriter: no LDM name for UNet parameter '{diffusers}'");
        var (dPrefix, resnet) = table[best];
        var rest = diffusers[dPrefix.Length..];
        if (resnet)
            foreach (var (ldmName, diffusersName) in LdmKeys.ResnetNames)
                if (rest.StartsWith(diffusersName, StringComparison.Ordinal)) { rest = ldmName + rest[diffusersName.Length..]; break; }
        return best + rest;
    }

    /// <summary>A diffusers VAE parameter name -> its LDM name (without the first_stage_model. prefix).</summary>
    internal static string VaeKey(string diffusers, (string Ldm, string Diffusers)[] table)
    {
        foreach (var (ldm, prefix) in table)
            if (diffusers.StartsWith(prefix, StringComparison.Ordinal))
                return ldm + diffusers[prefix.Length..].Replace("conv_shortcut.", "nin_shortcut.", StringComparison.Ordinal);
        return diffusers; // conv_in, conv_out, quant_conv, post_quant_conv keep their names
    }
}
