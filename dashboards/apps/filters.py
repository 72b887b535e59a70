from dashboards.pages.filters import page

page().servable(title="Kowalski · filters")
