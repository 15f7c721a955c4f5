"""The sandbox: a loopback emulator of the PluginLab and Plugipay APIs."""
