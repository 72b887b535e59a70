from dashboards.pages.alerts import page

page().servable(title="Kowalski · alerts")
