"""django-pluginlab: PluginLab and Plugipay for Django."""

__version__ = "0.1.0"
