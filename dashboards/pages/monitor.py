"""Broker monitor: alerts/s per survey, ms per alert by stage, dead letters, database outages,
Kafka-to-stored latency (and Kafka lag when the broker reports it), from the broker's ``/stats``
(``dashboards/broker_stats.py``), read again every ``hub.dashboards.monitor_interval_s``. When no
broker answers the page says so in a banner and keeps trying."""

from __future__ import annotations

import pandas as pd
import panel as pn

from dashboards.broker_stats import BrokerDown, Rates, headline, read_stats, stages_frame, stats_url, surveys_frame
from dashboards.session import banner, start


def page():
    session, layout = start("monitor")
    if session is None:
        return layout
    url = stats_url(session.config)
    period_ms = int(float(session.dash.get("monitor_interval_s", 3)) * 1000)
    message = pn.Column(sizing_mode="stretch_width", css_classes=["kw-broker-message"])
    head = pn.pane.Markdown("", css_classes=["kw-broker-headline"])
    surveys = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_data_table",
                                   css_classes=["kw-broker-surveys"])
    stages = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_data_table",
                                  css_classes=["kw-broker-stages"])
    layout.extend([pn.pane.Markdown(f"## Broker monitor\nFrom `{url}`, every {period_ms / 1000:g} s."), message,
                   head, pn.pane.Markdown("### Alerts per survey"), surveys,
                   pn.pane.Markdown("### ms per alert by stage (mean since the broker started)"), stages])
    rates = Rates()

    def update():
        try:
            snap = read_stats(url)
        except BrokerDown as exc:
            message.objects = [banner(str(exc), "warning")]
            head.object = ""
            rates.last = None
            return
        except Exception as exc:  # noqa: BLE001 - a message, never a traceback
            message.objects = [banner(exc)]
            return
        message.objects = []
        head.object = headline(snap)
        surveys.value = surveys_frame(snap, rates.update(snap))
        stages.value = stages_frame(snap)

    pn.state.onload(update)
    pn.state.add_periodic_callback(update, period=period_ms)
    return layout
