// The consent and sensitivity decision and the minimal projection
// (services/coordination/projection.h, docs/consent.md).
#include "services/coordination/projection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "casebridge/options/v1/options.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

namespace common = casebridge::common::v1;
namespace ev = casebridge::events::v1;
using casebridge::coordination::v1::DISCLOSURE_FULL;
using casebridge::coordination::v1::DISCLOSURE_MINIMAL;
using ::testing::IsEmpty;

ev::Consent ConsentFor(const std::string& id, common::Administration administration,
                       std::vector<ev::Sensitivity> kinds) {
  ev::Consent consent;
  consent.set_consent_id(id);
  ev::ConsentGrant& grant = *consent.add_grants();
  grant.set_administration(administration);
  for (ev::Sensitivity kind : kinds) grant.add_sensitivities(kind);
  return consent;
}

// A health refusal of a referral with everything a projection must drop.
ev::CaseEvent HealthRefusal() {
  ev::CaseEvent event = testing::ReferralEvent("health-refusal");
  event.set_source("/casebridge/health/0751");
  event.set_source_system(ev::SOURCE_SYSTEM_HEALTH);
  event.set_sensitivity(ev::SENSITIVITY_SPECIAL_HEALTH);
  event.set_idempotency_key("health-key-1");
  event.mutable_actor()->set_role(common::ROLE_HEALTH_ADMINISTRATION);
  event.mutable_actor()->set_unit("Sundhed og Omsorg");
  event.mutable_actor()->set_name("Dr. Hansen");
  common::LegalReference& basis = *event.add_legal_basis();
  basis.set_law("SUL");
  basis.set_paragraph("119");
  ev::Referral& referral = *event.mutable_referral();
  referral.set_referral_id("R-1");
  referral.set_status(ev::REFERRAL_STATUS_REFUSED);
  referral.mutable_offer()->set_code("SUL-alkohol");
  referral.mutable_offer()->set_name("Alkoholbehandling");
  referral.mutable_offer()->set_administration(common::ADMINISTRATION_HEALTH);
  referral.mutable_to_unit()->set_id("0751-rusmiddelcenter");
  referral.mutable_to_unit()->set_name("Rusmiddelcenter Aarhus");
  referral.mutable_to_unit()->set_administration(common::ADMINISTRATION_HEALTH);
  referral.mutable_assessment()->set_in_target_group(false);
  referral.mutable_assessment()->add_reasons()->set_text("Borgeren har et aktivt misbrug");
  referral.add_reasons()->set_code("not-in-target-group");
  event.set_type(EventTypeFor(event));
  return event;
}

TEST(DecideDisclosureTest, OrdinaryContentIsAlwaysFull) {
  ev::CaseEvent event = testing::DecisionEvent("d1");
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_UNSPECIFIED, {}, {}),
            (DisclosureDecision{DISCLOSURE_FULL, "ordinary", {}}));
}

TEST(DecideDisclosureTest, SpecialContentIsMinimalWithoutConsent) {
  const ev::CaseEvent event = HealthRefusal();
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_JOB_CENTRE,
                             {common::ROLE_COORDINATING_CASEWORKER}, {}),
            (DisclosureDecision{DISCLOSURE_MINIMAL, "no-consent", {}}));
}

TEST(DecideDisclosureTest, TheRecordingAdministrationAndTheCitizenSeeItWhole) {
  const ev::CaseEvent event = HealthRefusal();
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_HEALTH,
                             {common::ROLE_HEALTH_ADMINISTRATION}, {})
                .basis,
            "own-administration");
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_UNSPECIFIED, {common::ROLE_CITIZEN}, {})
                .basis,
            "citizen");
}

TEST(DecideDisclosureTest, AConsentCoversOnlyItsAdministrationAndItsKinds) {
  const ev::CaseEvent event = HealthRefusal();
  const std::vector<ev::Consent> consents = {
      ConsentFor("c-social", common::ADMINISTRATION_SOCIAL_SERVICES,
                 {ev::SENSITIVITY_SPECIAL_HEALTH}),
      ConsentFor("c-jobcentre-addiction", common::ADMINISTRATION_JOB_CENTRE,
                 {ev::SENSITIVITY_SPECIAL_ADDICTION}),
  };
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_JOB_CENTRE, {}, consents).disclosure,
            DISCLOSURE_MINIMAL);
  const std::vector<ev::Consent> covering = {
      consents[0], consents[1],
      ConsentFor("c-jobcentre-health", common::ADMINISTRATION_JOB_CENTRE,
                 {ev::SENSITIVITY_CONFIDENTIAL, ev::SENSITIVITY_SPECIAL_HEALTH})};
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_JOB_CENTRE, {}, covering),
            (DisclosureDecision{DISCLOSURE_FULL, "consent", {"c-jobcentre-health"}}));
}

TEST(DecideDisclosureTest, AWithdrawnConsentCoversNothing) {
  ev::Consent consent = ConsentFor("c1", common::ADMINISTRATION_JOB_CENTRE,
                                   {ev::SENSITIVITY_SPECIAL_HEALTH});
  consent.set_withdrawn(true);
  EXPECT_EQ(
      DecideDisclosure(HealthRefusal(), common::ADMINISTRATION_JOB_CENTRE, {}, {consent}).basis,
      "no-consent");
}

TEST(DecideDisclosureTest, UnspecifiedSensitivityIsTreatedAsConfidential) {
  ev::CaseEvent event = testing::DecisionEvent("d1");
  event.set_source_system(ev::SOURCE_SYSTEM_SOCIAL);
  event.set_sensitivity(ev::SENSITIVITY_UNSPECIFIED);
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_JOB_CENTRE, {}, {}).disclosure,
            DISCLOSURE_MINIMAL);
  EXPECT_EQ(DecideDisclosure(event, common::ADMINISTRATION_JOB_CENTRE, {},
                             {ConsentFor("c", common::ADMINISTRATION_JOB_CENTRE,
                                         {ev::SENSITIVITY_CONFIDENTIAL})})
                .disclosure,
            DISCLOSURE_FULL);
}

TEST(MinimalProjectionTest, AReferralRefusalSaysThatItWasRefusedNotWhy) {
  const ev::CaseEvent minimal = MinimalProjection(HealthRefusal());
  EXPECT_EQ(minimal.id(), "health-refusal");
  EXPECT_EQ(minimal.type(), "dk.casebridge.referral.refused.v1");
  EXPECT_EQ(minimal.sensitivity(), ev::SENSITIVITY_SPECIAL_HEALTH);
  EXPECT_EQ(minimal.referral().referral_id(), "R-1");
  EXPECT_EQ(minimal.referral().status(), ev::REFERRAL_STATUS_REFUSED);
  EXPECT_EQ(minimal.referral().to_unit().administration(), common::ADMINISTRATION_HEALTH);
  EXPECT_EQ(minimal.referral().to_unit().id(), "");
  EXPECT_EQ(minimal.referral().to_unit().name(), "");
  EXPECT_EQ(minimal.referral().offer().code(), "");
  EXPECT_EQ(minimal.referral().offer().name(), "");
  EXPECT_FALSE(minimal.referral().has_assessment());
  EXPECT_THAT(minimal.referral().reasons(), IsEmpty());
  EXPECT_THAT(minimal.legal_basis(), IsEmpty());
  EXPECT_EQ(minimal.idempotency_key(), "");
  EXPECT_EQ(minimal.actor().name(), "");
  EXPECT_EQ(minimal.actor().unit(), "Sundhed og Omsorg");
  // Nothing of the clinical content survives anywhere in the bytes.
  const std::string bytes = minimal.SerializeAsString();
  for (const char* secret : {"misbrug", "Alkohol", "alkohol", "Rusmiddelcenter", "Hansen", "SUL"}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret;
  }
}

TEST(MinimalProjectionTest, AnAppointmentSaysThatItExistsAndWhen) {
  ev::CaseEvent event = testing::AppointmentEvent("a1");
  ev::Appointment& appointment = *event.mutable_appointment();
  appointment.mutable_start()->set_seconds(1800000000);
  appointment.mutable_end()->set_seconds(1800003600);
  appointment.mutable_location()->set_name("Rusmiddelcenter Aarhus");
  appointment.add_attendees()->set_name("Dr. Hansen");
  appointment.set_purpose("Opfølgning på behandling");
  const ev::CaseEvent minimal = MinimalProjection(event);
  EXPECT_EQ(minimal.appointment().appointment_id(), "A-a1");
  EXPECT_EQ(minimal.appointment().status(), ev::APPOINTMENT_STATUS_SCHEDULED);
  EXPECT_EQ(minimal.appointment().start().seconds(), 1800000000);
  EXPECT_EQ(minimal.appointment().end().seconds(), 1800003600);
  EXPECT_EQ(minimal.appointment().kind(), ev::APPOINTMENT_KIND_UNSPECIFIED);
  EXPECT_FALSE(minimal.appointment().has_location());
  EXPECT_THAT(minimal.appointment().attendees(), IsEmpty());
  EXPECT_EQ(minimal.appointment().purpose(), "");
}

// Visits every set field of `message`, recursively.
void ForEachSetField(const google::protobuf::Message& message, const std::string& path,
                     const std::function<void(const google::protobuf::FieldDescriptor&,
                                              const std::string&)>& visit) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    const std::string field_path = path + "." + field->name();
    visit(*field, field_path);
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const google::protobuf::Reflection& reflection = *message.GetReflection();
    if (field->is_repeated()) {
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        ForEachSetField(reflection.GetRepeatedMessage(message, field, i), field_path, visit);
      }
    } else {
      ForEachSetField(reflection.GetMessage(message, field), field_path, visit);
    }
  }
}

// Sets every string field of `message` (recursively, one element per
// repeated message) to a marker, so the test below sees each of them.
void FillStrings(google::protobuf::Message& message, int depth = 0) {
  if (depth > 4) return;
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor.field(i);
    if (field->containing_oneof() != nullptr && field->containing_oneof()->name() == "ref") {
      continue;
    }
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      if (field->is_repeated()) {
        reflection.AddString(&message, field, "marker-" + field->name());
      } else {
        reflection.SetString(&message, field, "marker-" + field->name());
      }
    } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
               field->message_type()->full_name().rfind("casebridge.", 0) == 0) {
      FillStrings(field->is_repeated() ? *reflection.AddMessage(&message, field)
                                       : *reflection.MutableMessage(&message, field),
                  depth + 1);
    }
  }
}

// No field marked personal data survives the minimal projection of any
// payload, even when every string field of the event is filled in.
TEST(MinimalProjectionTest, NoPersonalDataFieldSurvivesForAnyPayload) {
  const google::protobuf::OneofDescriptor& payload =
      *ev::CaseEvent::descriptor()->FindOneofByName("payload");
  for (int i = 0; i < payload.field_count(); ++i) {
    ev::CaseEvent event;
    FillStrings(event);  // the envelope
    FillStrings(*event.GetReflection()->MutableMessage(&event, payload.field(i)));
    event.set_sensitivity(ev::SENSITIVITY_SPECIAL_ADDICTION);
    const ev::CaseEvent minimal = MinimalProjection(event);
    ForEachSetField(minimal, "event", [&](const google::protobuf::FieldDescriptor& field,
                                          const std::string& path) {
      EXPECT_FALSE(field.options().GetExtension(casebridge::options::v1::personal_data))
          << payload.field(i)->name() << ": " << path;
    });
    EXPECT_EQ(minimal.idempotency_key(), "") << payload.field(i)->name();
    EXPECT_THAT(minimal.legal_basis(), IsEmpty()) << payload.field(i)->name();
  }
}

TEST(ProjectTest, FullIsTheEventAndMinimalIsTheProjection) {
  const ev::CaseEvent event = HealthRefusal();
  EXPECT_EQ(Project(event, {DISCLOSURE_FULL, "consent", {"c"}}).SerializeAsString(),
            event.SerializeAsString());
  EXPECT_EQ(Project(event, {DISCLOSURE_MINIMAL, "no-consent", {}}).SerializeAsString(),
            MinimalProjection(event).SerializeAsString());
}

}  // namespace
}  // namespace casebridge::coordination
