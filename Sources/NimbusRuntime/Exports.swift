// Services build on the runtime, the wire protocol and the cluster config together.
@_exported import NimbusConfig
@_exported import NimbusProtocol
