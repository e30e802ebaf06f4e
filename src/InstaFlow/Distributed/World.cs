// Which world this process belongs to: Open MPI's when an MPI launcher (mpirun, srun with PMIx) started it, else one rank.
namespace InstaFlow.Distributed;

public static class World
{
    /// <summary>
    /// True when the environment says a launcher started this process as one rank of a job: Open MPI's mpirun sets
    /// OMPI_COMM_WORLD_SIZE; Slurm's srun --mpi=pmix and other PMIx launchers set PMIX_RANK.
    /// </summary>
    public static bool LaunchedByMpi =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") != null || Environment.GetEnvironmentVariable("PMIX_RANK") != null;

    /// <summary>Open MPI's world when launched by MPI (the caller disposes it, which finalizes MPI), else the one-rank world.</summary>
    public static ICommunicator FromEnvironment() => LaunchedByMpi ? OpenMpiCommunicator.Initialize() : SingleProcessCommunicator.Instance;
}
