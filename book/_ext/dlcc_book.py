"""Sphinx extension for the DLCC book."""


def _derive_urls(app, config):
    """Everything site-wide derives from ``html.baseurl`` and ``repository.url`` in _config.yml."""
    if not config.html_baseurl.endswith("/"):
        config.html_baseurl += "/"
    config.ogp_site_url = config.html_baseurl


def setup(app):
    app.add_config_value("dlcc_hide_solutions", False, "env", types=[bool])
    app.connect("config-inited", _derive_urls)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
