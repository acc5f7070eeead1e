"""Beam's pipeline options with each view made once (imports Beam: load it where Beam is wanted)."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions


class ReusedViews(PipelineOptions):
    """`PipelineOptions` whose `view_as(cls)` returns the same view of `cls` every time.

    Beam reads an option through a view at each transform it applies (`view_as(TypeOptions)`, twice
    per transform) and at each step of a run, and each view parses the flags anew with a fresh
    argparse parser: ~400 parsers per run, 0.1-0.3 s of building the bench corpus's graph. A view
    keeps no value of its own (the values live in `_all_options`, shared by the options and all their
    views), and the flags do not change, so one view per class reads and writes what a new one would."""

    def view_as(self, cls):
        views = self.__dict__.setdefault("_c4clean_views", {})  # not through __setattr__: Beam's refuses
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_c4clean_views", None)
        return state
