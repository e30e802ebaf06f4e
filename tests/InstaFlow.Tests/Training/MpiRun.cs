// Launches the built `instaflow` CLI as a child process, alone or as N ranks under Open MPI's mpirun. Without mpirun
// the tests that need it fail with the fix (.ci/run installs Open MPI, as it installs chromium for the web UI test).
using System.Diagnostics;

namespace InstaFlow.Tests.Training;

public sealed record CliProcessResult(int Code, string Out, string Err, TimeSpan Elapsed);

public static class MpiRun
{
    public static string Mpirun => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("mpirun not found on PATH: the 2-rank data-parallel tests need Open MPI (apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it)");

    /// <summary>The CLI the test project builds beside itself (it references InstaFlow.Cli).</summary>
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "instaflow.dll");

    /// <summary>Starts `instaflow args` alone (ranks 0) or as `ranks` ranks under mpirun; the caller waits.</summary>
    public static Process Start(int ranks, IEnumerable<string> args)
    {
        // stdin redirected (and closed below): mpirun forwards its stdin to rank 0 and must not take the test host's
        var psi = new ProcessStartInfo { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (ranks > 0)
        {
            // setsid: mpirun in a session of its own, so that tearing down a failed job signals its processes only
            psi.FileName = "setsid";
            psi.ArgumentList.Add(Mpirun);
            foreach (var a in new[] { "--oversubscribe", "--allow-run-as-root", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet" }) psi.ArgumentList.Add(a);
        }
        else psi.FileName = "dotnet";
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.StandardInput.Close();
        return p;
    }

    /// <summary>Runs to the end (killed after the timeout) and returns exit code, output and wall time.</summary>
    public static CliProcessResult Run(int ranks, params string[] args) => Wait(Start(ranks, args), TimeSpan.FromMinutes(5));

    public static CliProcessResult Wait(Process p, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            throw new TimeoutException($"instaflow did not finish in {timeout.TotalSeconds:F0} s; stderr so far: {stderr.Result}");
        }
        p.WaitForExit();
        return new CliProcessResult(p.ExitCode, stdout.Result, stderr.Result, clock.Elapsed);
    }

    /// <summary>The pid of the child of <paramref name="launcher"/> that Open MPI started as <paramref name="rank"/>, or null.</summary>
    public static int? RankPid(Process launcher, int rank)
    {
        // Only the launcher's children (listed per thread by the kernel) are looked at: reading the environment of
        // every process on a shared machine can block behind a process that is busy with its memory map.
        foreach (var task in Directory.GetDirectories($"/proc/{launcher.Id}/task"))
        {
            string children;
            try { children = File.ReadAllText(Path.Combine(task, "children")); }
            catch (IOException) { continue; }
            foreach (var child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                try
                {
                    var env = File.ReadAllText($"/proc/{child}/environ").Split('\0');
                    if (env.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return int.Parse(child, System.Globalization.CultureInfo.InvariantCulture);
                }
                catch (IOException) { }
            }
        }
        return null;
    }
}
