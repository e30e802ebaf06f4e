// Progress of a long library job (pairs, triplets, evaluation, feature extraction) as done/total counts: the library
// never prints, it reports through IProgress<JobProgress> and the front end decides how to show it.
namespace InstaFlow;

/// <summary>
/// One progress report of a long job: <paramref name="Done"/> of <paramref name="Total"/> units (images, triplets,
/// steps). <paramref name="Stage"/> names the part of a multi-stage job (a new stage starts its count again);
/// <paramref name="Detail"/> is a short human-readable status such as "loss 0.0123".
/// </summary>
public readonly record struct JobProgress(long Done, long Total, string? Detail = null, string? Stage = null);
