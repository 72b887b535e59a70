from dashboards.pages.object import page

page().servable(title="Kowalski · object")
