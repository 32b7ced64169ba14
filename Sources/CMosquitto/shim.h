// libmosquitto's public header, reached only by VigilIngest's MosquittoClient.
#include <mosquitto.h>
#include <mqtt_protocol.h>
