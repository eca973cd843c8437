#ifndef NIMBUS_CZEROMQ_SHIM_H
#define NIMBUS_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
