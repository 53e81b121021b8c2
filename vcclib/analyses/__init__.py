"""One module per book chapter: the functions that compute its tables and records, and its conclusions.

``vcclib.analyses.<chapter>`` holds everything a chapter computes, so the notebook only loads, calls, plots and
writes through :class:`vcclib.results.Results`. Each module has one ``conclusions(records) -> Takeaways`` that
writes the chapter's answer (the key-takeaways box it opens with) from the records it wrote.
"""

from vcclib.analyses.takeaways import Takeaways

__all__ = ["Takeaways"]
