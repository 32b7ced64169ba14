// libmosquitto's public header, reached only by VigilMQTT.
#include <mosquitto.h>
#include <mqtt_protocol.h>
