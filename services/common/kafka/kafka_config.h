// librdkafka configuration from a `casebridge.config.v1.KafkaConfig`.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::kafka {

// The delivery timeout in force (config value or the 10 s default).
absl::Duration DeliveryTimeout(const casebridge::config::v1::KafkaConfig& config);

// Returns kInvalidArgument naming the field if `config` is unusable:
// `kafka.bootstrap_servers` empty, `kafka.properties` setting a durability
// property ("acks", "enable.idempotence", "request.required.acks"), or
// `kafka.tls` set without `ca_file`, with a certificate but no key (or the
// other way round), or with `kafka.properties` also setting
// security.protocol or an ssl.*.location property. Reads no files.
absl::Status ValidateKafkaConfig(const casebridge::config::v1::KafkaConfig& config);

// Returns kInvalidArgument naming the field ("kafka.tls.cert_file: cannot read
// ...") unless every file `kafka.tls` names is readable PEM of the right kind
// and the key belongs to the certificate. OK without `kafka.tls`. The
// producer and consumer factories call it before connecting.
absl::Status CheckKafkaTlsFiles(const casebridge::config::v1::KafkaConfig& config);

// The librdkafka properties common to producers and consumers:
// bootstrap.servers, with `kafka.tls` security.protocol=ssl and the
// ssl.ca.location / ssl.certificate.location / ssl.key.location it names,
// plus `config.properties`.
std::map<std::string, std::string> ClientProperties(
    const casebridge::config::v1::KafkaConfig& config);

}  // namespace casebridge::kafka
