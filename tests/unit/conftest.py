"""Hypothesis settings profiles for the unit tier.

`ci` (the default) is derandomized with a bounded number of examples, so a CI run is reproducible and the
fast tier stays fast; `thorough` explores more, at random, for a local or nightly run. Property tests apply
the profile named by `CE_HYPOTHESIS_PROFILE` explicitly (`settings(settings.get_profile(...))`), so
registering them here changes no other test's settings.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=20, print_blob=True
)
settings.register_profile("thorough", database=None, deadline=None, max_examples=400)
