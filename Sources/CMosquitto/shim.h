// libmosquitto's public header, reached only by VigilMQTT's MosquittoClient.
#include <mosquitto.h>
#include <mqtt_protocol.h>
