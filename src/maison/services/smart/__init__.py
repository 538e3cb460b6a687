"""The platform's SMART on FHIR authorization server: clients, authorization code flow,
backend services, EHR launch (https://hl7.org/fhir/smart-app-launch/)."""
