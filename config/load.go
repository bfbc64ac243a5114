package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// Source is the content of one configuration file.
type Source struct {
	Name string // shown in errors, usually the file's path
	Data []byte
}

// Load reads the files in order and parses them with Parse; a file that
// cannot be read is an *Error naming it (a missing file also matches
// fs.ErrNotExist).
func Load(files ...string) (*Config, error) {
	sources := make([]Source, 0, len(files))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is already in Error.File
			}
			return nil, &Error{File: name, Err: fmt.Errorf("cannot read config file: %w", err)}
		}
		sources = append(sources, Source{Name: name, Data: data})
	}
	return Parse(sources...)
}

// Parse merges the sources in order, later ones overriding earlier ones
// option by option, applies [DEFAULT] transport_url, fills the defaults that
// depend on other options and validates the result. Errors are *Error values
// (several are joined) naming the file, section and option at fault.
func Parse(sources ...Source) (*Config, error) {
	p := &parser{c: Default(), origins: map[string]origin{}}
	for _, s := range sources {
		f, err := readINI(s)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f)
	}
	errs := p.checkSections()
	errs = append(errs, p.resolve()...)
	if len(errs) == 0 {
		errs = p.finish()
	}
	if len(errs) == 0 {
		for _, e := range p.c.validate() {
			errs = append(errs, p.locate(e))
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	p.mixedFleetWarnings()
	return p.c, nil
}

// iniFile is one parsed source, with section names normalized as oslo does.
type iniFile struct {
	name     string
	sections map[string]map[string]string // section -> option -> value
	written  map[string]string            // section -> its name as written
	order    []string                     // sections in file order
}

// iniOptions mirror oslo.config's parser: '#' and ';' after a value are part
// of it, a trailing backslash is not a continuation, and indented lines
// continue the previous value.
var iniOptions = ini.LoadOptions{
	IgnoreInlineComment:        true,
	IgnoreContinuation:         true,
	AllowPythonMultilineValues: true,
}

func readINI(s Source) (*iniFile, error) {
	parsed, err := ini.LoadSources(iniOptions, s.Data)
	if err != nil {
		return nil, &Error{File: s.Name, Err: fmt.Errorf("syntax error: %w", err)}
	}
	f := &iniFile{name: s.Name, sections: map[string]map[string]string{}, written: map[string]string{}}
	for _, sec := range parsed.Sections() {
		name := sec.Name()
		if name != sectionDefault {
			name = strings.ToLower(name)
		}
		opts, ok := f.sections[name]
		if !ok {
			opts = map[string]string{}
			f.sections[name] = opts
			f.written[name] = sec.Name()
			f.order = append(f.order, name)
		}
		for _, k := range sec.Keys() {
			opts[k.Name()] = joinContinuation(k.Value())
		}
	}
	return f, nil
}

// joinContinuation strips the indentation of continuation lines, as oslo
// does.
func joinContinuation(v string) string {
	if !strings.Contains(v, "\n") {
		return v
	}
	lines := strings.Split(v, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

// origin is where an option's value came from, for locating errors found
// once all files are merged.
type origin struct {
	file, section, option, value string
	// via names the URL part that set the option, when it came from
	// [DEFAULT] transport_url.
	via string
}

type parser struct {
	c       *Config
	files   []*iniFile
	origins map[string]origin // option key -> where its value came from
}

func (p *parser) warn(format string, args ...any) {
	p.c.Warnings = append(p.c.Warnings, fmt.Sprintf(format, args...))
}

// checkSections rejects unknown options in this package's own sections;
// other sections and [DEFAULT] belong to other programs too (nova.conf).
func (p *parser) checkSections() []error {
	var errs []error
	for _, f := range p.files {
		for _, sec := range f.order {
			if !slices.Contains(ownSections, sec) {
				continue
			}
			if sec == sectionProxyTypo {
				p.warn("%s: section [%s] is read as [%s], its correct name", f.name, f.written[sec], sectionProxy)
			}
			known := knownNames(sec)
			for _, name := range sortedKeys(f.sections[sec]) {
				switch {
				case lookupOption(sec, name) != nil:
				case sec == sectionZMQ && slices.Contains(ignoredZMQOptions, name):
					p.warn("%s: [%s] %s has no effect in this implementation", f.name, f.written[sec], name)
				default:
					value := maskValue(name, f.sections[sec][name])
					if isSecret(closest(name, known)) {
						value = "***" // a misspelt password is still a password
					}
					errs = append(errs, &Error{
						File: f.name, Section: f.written[sec], Option: name, Value: value,
						Err: unknownOption("option", name, known),
					})
				}
			}
		}
	}
	return errs
}

// resolve sets every option written in the files. As in oslo.config, the
// last file holding any of an option's names wins; within a file the
// current name and section win over deprecated ones.
func (p *parser) resolve() []error {
	var errs []error
	for i := range options {
		o := &options[i]
		f, loc, raw, ok := p.lookup(o)
		if !ok {
			continue
		}
		section := f.written[loc.section]
		if err := o.set(p.c, raw); err != nil {
			errs = append(errs, &Error{File: f.name, Section: section, Option: loc.name, Value: maskValue(loc.name, raw), Err: err})
			continue
		}
		p.origins[o.key()] = origin{file: f.name, section: section, option: loc.name, value: maskValue(loc.name, raw)}
		switch loc.name {
		case "rpc_cast_timeout":
			// The SEED applied rpc_cast_timeout only when > 0, so files
			// written for it mean "infinite" by 0 (gotcha 10).
			if p.c.Linger == 0 {
				p.c.Linger = -1 * time.Second
			}
			p.warn("%s: [%s] rpc_cast_timeout is deprecated, use [%s] zmq_linger", f.name, section, sectionZMQ)
		case "rpc_thread_pool_size":
			p.warn("%s: [%s] rpc_thread_pool_size is deprecated, use executor_thread_pool_size", f.name, section)
		}
	}
	return errs
}

// lookup finds the value that wins for o.
func (p *parser) lookup(o *option) (*iniFile, location, string, bool) {
	for i := len(p.files) - 1; i >= 0; i-- {
		f := p.files[i]
		for _, l := range o.locations() {
			if v, ok := f.sections[l.section][l.name]; ok {
				return f, l, v, true
			}
		}
	}
	return nil, location{}, "", false
}

// finish applies the transport URL and the defaults derived from other
// options.
func (p *parser) finish() []error {
	c := p.c
	// The password read from [matchmaker_redis] belongs to its host.
	c.Redis.Hosts[0].Password = c.Redis.Password

	if c.TransportURL != "" {
		at := p.origins[sectionDefault+".transport_url"]
		fail := func(err error) []error {
			var e *Error
			if errors.As(err, &e) {
				err = e.Err
			}
			return []error{&Error{File: at.file, Section: at.section, Option: at.option, Value: at.value, Err: err}}
		}
		u, err := ParseTransportURL(c.TransportURL)
		if err != nil {
			return fail(err)
		}
		_, explicit := p.origins[sectionZMQ+".rpc_zmq_matchmaker"]
		err = c.applyTransportURL(u, explicit, func(key, via string) {
			o := at
			o.via = via
			p.origins[key] = o
		}, func(msg string) {
			p.warn("%s: [%s] %s = %q: %s", at.file, at.section, at.option, at.value, msg)
		})
		if err != nil {
			return fail(err)
		}
	}

	if _, ok := p.origins[sectionProxy+".host"]; !ok {
		c.Proxy.Host = c.Host
	}
	if _, ok := p.origins[sectionZMQ+".zmq_target_update"]; !ok {
		c.TargetUpdate = defaultTargetUpdate(c.TargetExpire)
	} else if c.TargetExpire > 0 && c.TargetUpdate >= c.TargetExpire {
		at := p.origins[sectionZMQ+".zmq_target_update"]
		p.warn("%s: [%s] %s = %q: not below zmq_target_expire (%v), so registrations lapse between updates",
			at.file, at.section, at.option, at.value, c.TargetExpire)
	}
	return nil
}

// locate rewrites an error of Validate, which names canonical options, to
// name the file, section, option and value as written.
func (p *parser) locate(e *Error) error {
	o, ok := p.origins[e.Section+"."+e.Option]
	if !ok {
		return e
	}
	out := &Error{File: o.file, Section: o.section, Option: o.option, Value: o.value, Err: e.Err}
	if o.via != "" {
		out.Err = fmt.Errorf("%s: %w", o.via, e.Err)
	}
	return out
}

// maskValue hides secrets before a value goes into an error.
func maskValue(option, v string) string {
	switch {
	case isSecret(option):
		return "***"
	case option == "transport_url" || option == "url":
		return redactURL(v)
	}
	return v
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
