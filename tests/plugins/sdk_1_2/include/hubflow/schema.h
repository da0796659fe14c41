#pragma once
// What a component declares about itself: its type name, kind and config schema. The schema is both the
// validation rules for a pipeline file and the documentation `hubflow plugins --describe TYPE` prints.

#include <string>
#include <vector>

namespace hubflow {

enum class ComponentKind { source, filter, sink };
const char* kind_name(ComponentKind kind);

enum class FieldType {
    string,
    integer,
    number,  // integer or fraction
    boolean,
    strings,  // array of strings
    object,   // nested object whose keys are declared in `fields`
    map,      // object with free keys (e.g. library properties passed through)
    any,      // not checked by the host; the component validates it in configure()
};
const char* field_type_name(FieldType type);

// A resource a value claims exclusively, so validation refuses two nodes claiming the same one.
enum class Claim { none, file_path, listen_address };

struct ConfigField {
    std::string name;
    FieldType type = FieldType::string;
    std::string default_json;  // JSON text of the default ("" = no default)
    bool required = false;
    std::string doc;  // one line
    Claim claim = Claim::none;
    std::vector<ConfigField> fields;  // for FieldType::object
};

struct ComponentDescription {
    std::string type;  // what a pipeline's "type" says: lowercase with underscores
    ComponentKind kind = ComponentKind::source;
    std::string summary;  // one line
    std::vector<ConfigField> fields;
};

struct PluginDescription {
    std::string name;
    std::string version;
    std::vector<ComponentDescription> components;
};

}  // namespace hubflow
