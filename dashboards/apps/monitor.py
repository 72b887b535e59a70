from dashboards.pages.monitor import page

page().servable(title="Kowalski · broker")
