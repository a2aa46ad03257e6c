"""The whole pipeline on the configured detector, as one command."""

from __future__ import annotations

import law

from deepclean.tasks.data import Fetch


class Pipeline(law.WrapperTask):
    """Everything ``make run`` does: currently fetching (or simulating)
    the data of the configured span."""

    def requires(self):
        return Fetch.req(self)
