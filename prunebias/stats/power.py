"""The power constant shared by the tables and the dry-run's planning warning (standard
library only: the dry-run imports it while it builds the DAG, without scipy)."""

import math
from statistics import NormalDist

# The minimum detectable effect at 80% power and two-sided alpha 0.05 is this many
# standard errors: z_0.975 + z_0.80 = 2.8016.
MDE_FACTOR = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)

# A design is flagged underpowered when it cannot detect a "medium" effect at 80% power:
# Cohen's d = 0.5 for the SMDs, 0.33 for Cliff's delta; a raw difference has no scale.
MEDIUM_EFFECT = {"diff": math.inf, "smd": 0.5, "log_smd": 0.5, "cliffs_delta": 0.33}
