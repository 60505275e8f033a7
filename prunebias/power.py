"""The power constant shared by the tables and the dry-run's planning warning (standard
library only: the dry-run imports it while it builds the DAG, without scipy)."""

from statistics import NormalDist

# The minimum detectable effect at 80% power and two-sided alpha 0.05 is this many
# standard errors: z_0.975 + z_0.80 = 2.8016.
MDE_FACTOR = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)
