"""
A tiny Django + Channels site used only as the benchmarks' baseline: two minimal
``AsyncJsonWebsocketConsumer`` applications speaking just enough of the gateway protocol.
"""
