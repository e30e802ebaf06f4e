// The MPI world of an `instaflow` process started by mpirun or srun (one rank otherwise): made on first use by a
// training command, finalized when the command ends, and aborted when one rank fails so the others do not wait forever
// in their next all-reduce.
using InstaFlow.Distributed;

namespace InstaFlow.Cli;

public static class CliWorld
{
    private static ICommunicator? _world;

    /// <summary>This process's world; MPI_Init runs here the first time under an MPI launcher.</summary>
    public static ICommunicator Get() => _world ??= World.FromEnvironment();

    /// <summary>Whether this process should print progress and results: rank 0, or a process alone.</summary>
    public static bool Speaks => _world == null || _world.Rank == 0;

    /// <summary>Ends the world with the command's exit code: MPI_Abort for a failure among several ranks, else MPI_Finalize.</summary>
    public static void Finish(int exitCode)
    {
        var w = _world;
        if (w == null) return;
        _world = null;
        if (exitCode != 0 && w.Size > 1)
        {
            CliIO.Err.WriteLine($"error: rank {w.Rank} of {w.Size} failed (exit code {exitCode}); aborting the whole job");
            CliIO.Err.Flush();
            w.Abort(exitCode);
        }
        w.Dispose();
    }
}
