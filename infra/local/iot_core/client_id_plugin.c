/*
 * aircast's local IoT Core: a mosquitto 2.0 plugin that binds the MQTT client id
 * to the client certificate's identity, as AWS IoT Core's policy
 * `iot:Connect` on `client/${iot:Connection.Thing.ThingName}` does.
 *
 * At CONNECT (the basic-auth event) it reads the certificate's CN, the thing name,
 * and refuses the connection (CONNACK "not authorized") unless the client id
 * equals it. On success the CN becomes the user name, so the ACL file's `user`
 * and `pattern ... %u` lines apply to the certificate identity (what
 * use_identity_as_username does; that option makes mosquitto skip this event).
 *
 * Option `plugin_opt_client_id_prefix_identities` lists identities (space or comma
 * separated) that may also connect as `<CN>-<suffix>`, for service clients that open
 * several short connections at once (flush requests): on AWS, a policy with
 * `client/<name>-*`.
 *
 * Without it, any thing with a valid certificate could connect with the delivery
 * stream's client id and take over (or, with a clean session, discard) its
 * persistent session and the messages queued in it.
 *
 * Build: cc -O2 -fPIC -shared client_id_plugin.c -o client_id_plugin.so -lcrypto
 * (headers: mosquitto-dev, libmosquitto-dev, libssl-dev).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define MAX_PREFIX_IDENTITIES 16

static mosquitto_plugin_id_t *plugin_id = NULL;
static char *prefix_identities[MAX_PREFIX_IDENTITIES];
static int prefix_identity_count = 0;

/* The certificate's first CN as a new string, or NULL (none, empty, or an embedded NUL). */
static char *certificate_cn(struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	X509_NAME *name;
	X509_NAME_ENTRY *entry;
	ASN1_STRING *data;
	char *cn = NULL;
	int i, len;

	if(!cert) return NULL;
	name = X509_get_subject_name(cert);
	i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if(i >= 0){
		entry = X509_NAME_get_entry(name, i);
		data = entry ? X509_NAME_ENTRY_get_data(entry) : NULL;
		len = data ? ASN1_STRING_length(data) : 0;
		if(len > 0){
			cn = malloc((size_t)len + 1);
			if(cn){
				memcpy(cn, ASN1_STRING_get0_data(data), (size_t)len);
				cn[len] = '\0';
				if(strlen(cn) != (size_t)len){ /* embedded NUL: refuse, as mosquitto does */
					free(cn);
					cn = NULL;
				}
			}
		}
	}
	X509_free(cert);
	return cn;
}

static int may_use_prefix(const char *cn)
{
	int i;
	for(i = 0; i < prefix_identity_count; i++){
		if(!strcmp(prefix_identities[i], cn)) return 1;
	}
	return 0;
}

/* Whether a client with certificate identity `cn` may connect as `client_id`. */
static int client_id_allowed(const char *cn, const char *client_id)
{
	size_t n = strlen(cn);
	if(!strcmp(client_id, cn)) return 1;
	return may_use_prefix(cn) && !strncmp(client_id, cn, n) && client_id[n] == '-' && client_id[n + 1] != '\0';
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	char *cn;
	int rc;

	(void)event;
	(void)userdata;
	cn = certificate_cn(ed->client);
	if(!cn){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "aircast: refused client '%s': no certificate common name",
				client_id ? client_id : "");
		return MOSQ_ERR_AUTH;
	}
	if(!client_id || !client_id_allowed(cn, client_id)){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				"aircast: refused client id '%s' for certificate '%s': the client id must be the thing name",
				client_id ? client_id : "", cn);
		free(cn);
		return MOSQ_ERR_AUTH;
	}
	rc = mosquitto_set_username(ed->client, cn);
	free(cn);
	return rc == MOSQ_ERR_SUCCESS ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;
	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int opt_count)
{
	int i;
	char *value, *token, *save = NULL;

	(void)userdata;
	plugin_id = identifier;
	for(i = 0; i < opt_count; i++){
		if(strcmp(opts[i].key, "client_id_prefix_identities")) continue;
		value = strdup(opts[i].value);
		if(!value) return MOSQ_ERR_NOMEM;
		for(token = strtok_r(value, " ,", &save); token; token = strtok_r(NULL, " ,", &save)){
			if(prefix_identity_count == MAX_PREFIX_IDENTITIES
					|| !(prefix_identities[prefix_identity_count] = strdup(token))){
				free(value);
				return MOSQ_ERR_INVAL;
			}
			prefix_identity_count++;
		}
		free(value);
	}
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	while(prefix_identity_count > 0) free(prefix_identities[--prefix_identity_count]);
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
}
