"""What the loss plot shows, said when it is not what one would assume.

The plot draws the current model's curves and the reference lines of the text now open. Most of
the time both belong to one text. After another text is opened with a model still shown, the
curves are that model's, measured on the text it was trained on, beside lines measured on a text
it never saw: ``plot_caption`` says so in words ("" when the two agree, or nothing is drawn).
"""

from __future__ import annotations

from typing import Any

from charlstm_core.training.policy import same_text


def plot_caption(model: Any, model_source: str, corpus: Any, training: bool) -> str:
    """The caption above the plot for the current ``model`` (a ModelFile or None, named
    ``model_source``) and the open ``corpus``: "" unless the curves and the reference lines
    belong to different texts."""
    if training or model is None or model.train is None or corpus is None:
        return ""
    fp = model.train.corpus or {}
    if not fp.get("sha256") or same_text(fp, corpus.sha256):
        return ""
    name = model_source or "the current model"
    trained_on = fp.get("name") or "another text"
    return (
        f"The curves belong to {name}, which was trained and validated on {trained_on}. The "
        f"dashed reference lines are measured on {corpus.name}, the text now open, which that "
        "model never saw: the two do not compare. Open the model's text (File ▸ Open the "
        "Model's Text) to compare them, or train a new model on this text."
    )
