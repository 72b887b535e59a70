"""Human classification labels of the alert shown on the object page, read and set through
``/api/classifications/<survey>`` (the API applies the alert's data rights)."""

from __future__ import annotations

import pandas as pd
import panel as pn

from dashboards.session import api_message, banner
from kowalski.labels import name_problem, value_problem


def labels_frame(answer: dict | None) -> pd.DataFrame:
    """The ``human_labels`` of ``GET /api/classifications/<survey>/<candid>`` as rows."""
    labels = (answer or {}).get("human_labels") or {}
    return pd.DataFrame([{"label": k, "value": v} for k, v in sorted(labels.items())], columns=["label", "value"])


def parse_label(text: str, value: float | None) -> dict[str, float]:
    """{label: value} from the form; a ValueError says what is wrong."""
    name = (text or "").strip()
    v = 1.0 if value is None else float(value)
    problem = name_problem(name) or value_problem(v)
    if problem:
        raise ValueError(problem)
    return {name: v}


class LabelsView:
    def __init__(self, client, survey: str):
        self.client, self.survey, self.candid = client, survey, None
        self.name = pn.widgets.TextInput(name="label", placeholder="e.g. SN Ia", width=160, css_classes=["kw-label-name"])
        self.value = pn.widgets.FloatInput(name="confidence", value=1.0, start=0.0, end=1.0, step=0.1, width=90)
        self.add = pn.widgets.Button(name="Add label", button_type="primary", margin=(24, 5, 5, 5),
                                     css_classes=["kw-label-add"])
        self.remove = pn.widgets.Button(name="Remove selected", margin=(24, 5, 5, 5), css_classes=["kw-label-remove"])
        # ticked to remove: one model where a selectable table was ~12 (the page's server time is its models)
        self.table = pn.widgets.CheckBoxGroup(options={}, value=[], inline=False, width=300, css_classes=["kw-labels"])
        self.message = pn.Column()
        self.add.on_click(lambda *_: self._change("PUT"))
        self.remove.on_click(lambda *_: self._change("DELETE"))
        self.view = pn.Column(pn.pane.Markdown("### Your classification"), pn.Row(self.name, self.value, self.add),
                              self.table, self.remove, self.message)

    def fetch(self, candid: int) -> dict:
        """The API's answer for the alert's classifications (a 404 when it has none)."""
        return self.client.request("GET", f"/api/classifications/{self.survey}/{int(candid)}", ok=(404,))

    def show(self, candid: int, answer: dict | None = None) -> None:
        """Show an alert's labels (``answer``: ``fetch``'s, when already fetched)."""
        self.candid = int(candid)
        self.message.objects = []
        answer = answer if answer is not None else self.fetch(candid)
        df = labels_frame(answer.get("data") if answer.get("status") == "success" else None)
        self.table.options = {f"{r.label} ({r.value:g})": r.label for r in df.itertuples()}
        self.table.value = []

    def _change(self, method: str) -> None:
        self.message.objects = []
        try:
            if method == "PUT":
                labels: dict | list = parse_label(self.name.value, self.value.value)
            else:
                labels = list(self.table.value)
                if not labels:
                    raise ValueError("tick the labels to remove first")
        except ValueError as exc:
            self.message.append(banner(str(exc), "warning"))
            return
        try:
            self.client.request(method, f"/api/classifications/{self.survey}",
                                {str(self.candid): {"human_labels": labels}})
            self.show(self.candid)
            self.name.value = ""
        except Exception as exc:  # noqa: BLE001 - the API's message, never a traceback
            self.message.append(banner(api_message(exc)))
