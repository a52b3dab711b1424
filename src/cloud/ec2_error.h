// An EC2 API error and its response body (CLOUD-NOTES §0.4, §1.5). botocore reads an
// error only from a status of 301 or more, finds it at Errors/Error, and maps RequestID
// (capital ID, unlike a success body's requestId) to ResponseMetadata.RequestId:
//
//   <?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>C</Code>
//   <Message>M</Message></Error></Errors><RequestID>R</RequestID></Response>
//
// (one line, no namespace: the shape real EC2 sends).
#pragma once

#include <string>
#include <string_view>

namespace nimbus::cloud {

struct Ec2Error {
  int http_status = 400;
  std::string code;  // EC2's code: "InvalidParameterValue", "InvalidInstanceID.NotFound", ...
  std::string message;
};

// The error body; code, message and request id are escaped (a message may quote what a
// client sent).
std::string ec2_error_body(const Ec2Error& error, std::string_view request_id);

// A fresh request id: a random UUID version 4 in lower-case text
// ("8f3c1e2a-5b7d-4c1e-9a0b-1c2d3e4f5a6b"), from OpenSSL's CSPRNG.
std::string new_request_id();

// The common request errors, 400 each.
Ec2Error invalid_parameter_value(std::string message);
// "The request must contain the parameter NAME"
Ec2Error missing_parameter(std::string_view name);
// "The action NAME is not valid for this web service." (the name quoted safely)
Ec2Error invalid_action(std::string_view action);
// "The parameter NAME is not recognized"
Ec2Error unknown_parameter(std::string_view name);
// "The parameter combination is not valid: DETAIL" (InvalidParameterCombination)
Ec2Error invalid_parameter_combination(std::string message);

}  // namespace nimbus::cloud
