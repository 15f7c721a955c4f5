"""HTTP clients for PluginLab and Plugipay. HTTP only: nothing here touches the ORM."""
