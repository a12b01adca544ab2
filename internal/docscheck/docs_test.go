// Package docscheck checks that the Go snippets of the documentation
// compile: the ```go blocks of README.md and the code blocks of the
// package doc comments that declare something (":="). Each snippet becomes
// the body of a function in a throwaway package inside the module, with
// the names snippets take as given (ctx, b, conn, process, ...) declared
// around it and the imports its identifiers need; `...` placeholders
// become no-ops. It is built with the go command, and every error other
// than an unused variable or import fails the test.
package docscheck

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// snippet is one code block and where it comes from.
type snippet struct {
	where string
	code  string
}

// root is the module's root directory.
const root = "../.."

// readme returns the ```go blocks of README.md. A block fenced ```go native
// shows another client's code (the migration guide's native loops): it is
// highlighted as Go but not built, since it is not polykafka's API.
func readme(t *testing.T) []snippet {
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var cur []string
	in, start, line := false, 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case !in && strings.TrimSpace(l) == "```go":
			in, start, cur = true, line, nil
		case in && strings.TrimSpace(l) == "```":
			in = false
			out = append(out, snippet{fmt.Sprintf("README.md:%d", start), strings.Join(cur, "\n")})
		case in:
			cur = append(cur, l)
		}
	}
	return out
}

// docComments returns the code blocks ("//\t" lines) of the doc comments
// of the module's non-test Go files that declare a variable (":="): the
// usage snippets, not the tables.
func docComments(t *testing.T) []snippet {
	var out []snippet
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "examples") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var cur []string
		start := 0
		flush := func() {
			code := strings.Join(cur, "\n")
			if len(cur) > 0 && strings.Contains(code, ":=") && !strings.Contains(code, "func Test") {
				rel, _ := filepath.Rel(root, path)
				out = append(out, snippet{fmt.Sprintf("%s:%d", rel, start), code})
			}
			cur = nil
		}
		for i, l := range strings.Split(string(data), "\n") {
			if c, ok := strings.CutPrefix(l, "//\t"); ok {
				if cur == nil {
					start = i + 1
				}
				cur = append(cur, c)
				continue
			}
			if l == "//" && cur != nil {
				cur = append(cur, "")
				continue
			}
			flush()
		}
		flush()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// imports maps a package name used in snippets to its import.
var imports = map[string]string{
	"polykafka":   `"github.com/polykafka/polykafka"`,
	"consumer":    `"github.com/polykafka/polykafka/consumer"`,
	"producer":    `"github.com/polykafka/polykafka/producer"`,
	"admin":       `"github.com/polykafka/polykafka/admin"`,
	"discovery":   `"github.com/polykafka/polykafka/discovery"`,
	"offsetstore": `"github.com/polykafka/polykafka/offsetstore"`,
	"redisstore":  `redisstore "github.com/polykafka/polykafka/offsetstore/redis"`,
	"driver":      `"github.com/polykafka/polykafka/adapters/driver"`,
	"franz":       `"github.com/polykafka/polykafka/adapters/franz"`,
	"kafkago":     `"github.com/polykafka/polykafka/adapters/kafkago"`,
	"polysarama":  `polysarama "github.com/polykafka/polykafka/adapters/sarama"`,
	"polyotel":    `"github.com/polykafka/polykafka/polyotel"`,
	"confluent":   `"github.com/polykafka/polykafka/adapters/confluent"`,
	"kgo":         `"github.com/twmb/franz-go/pkg/kgo"`,
	"kadm":        `"github.com/twmb/franz-go/pkg/kadm"`,
	"sarama":      `"github.com/IBM/sarama"`,
	"kafka":       `"github.com/confluentinc/confluent-kafka-go/v2/kafka"`,
	"segkafka":    `segkafka "github.com/segmentio/kafka-go"`,
	"redis":       `"github.com/redis/go-redis/v9"`,
	"context":     `"context"`,
	"errors":      `"errors"`,
	"fmt":         `"fmt"`,
	"log":         `"log"`,
	"slog":        `"log/slog"`,
	"os":          `"os"`,
	"signal":      `"os/signal"`,
	"time":        `"time"`,
	"tls":         `"crypto/tls"`,
	"slices":      `"slices"`,
}

// given declares the names snippets use without declaring them.
const given = `
var (
	ctx      context.Context
	b        driver.Backend
	backend  driver.Backend
	conn     polykafka.Connection
	brokers  []string
	body     []byte
	handler  consumer.Handler
	group    string
	topics   []string
)

func process(polykafka.Record) error                { return nil }
func transform(r *polykafka.Record) *polykafka.Record { return r }
`

// importLines returns the import lines of the packages in used, sorted.
func importLines(used map[string]bool) string {
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString("\t" + imports[n] + "\n")
	}
	return b.String()
}

var (
	placeholderBlock = regexp.MustCompile(`\{\s*\.\.\.\s*\}`)
	placeholderLine  = regexp.MustCompile(`(?m)^\s*\.\.\.\s*$`)
	pkgUse           = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.[A-Za-z_]`)
	lineOf           = regexp.MustCompile(`^\./?snippet_(\d+)\.go:(\d+):\d+: (.*)$`)
)

func TestSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every documentation snippet with the go command")
	}
	snippets := append(readme(t), docComments(t)...)
	if len(snippets) < 5 {
		t.Fatalf("found only %d snippets: the extraction is broken", len(snippets))
	}
	dir, err := os.MkdirTemp(root, ".docscheck-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Logf("snippets: %d", len(snippets))
	offset := make(map[int]int)
	for i, s := range snippets {
		code := placeholderBlock.ReplaceAllString(s.code, "{}")
		code = placeholderLine.ReplaceAllString(code, "")
		used := map[string]bool{}
		for _, m := range pkgUse.FindAllStringSubmatch(code, -1) {
			if _, ok := imports[m[1]]; ok {
				used[m[1]] = true
			}
		}
		// The function starts on line 3 + len(used) + 2: lineOf's
		// numbers are turned back into the snippet's own below.
		src := "package main\n\nimport (\n" + importLines(used) + ")\n\nfunc snippet" + fmt.Sprint(i) + "() {\n" + code + "\n}\n"
		offset[i] = 5 + len(used)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet_%d.go", i)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mainSrc := "package main\n\nimport (\n" + importLines(map[string]bool{"context": true, "driver": true, "polykafka": true, "consumer": true}) + ")\n" + given + "\nfunc main() {}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-gcflags=-e", "-o", os.DevNull, ".")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") || strings.Contains(l, "declared and not used") || strings.Contains(l, "imported and not used") {
			continue
		}
		if m := lineOf.FindStringSubmatch(l); m != nil {
			var i, n int
			fmt.Sscan(m[1], &i)
			fmt.Sscan(m[2], &n)
			l = fmt.Sprintf("%s (snippet line %d): %s", snippets[i].where, n-offset[i], m[3])
		}
		bad = append(bad, l)
	}
	if len(bad) > 0 {
		t.Errorf("documentation snippets that do not compile:\n%s", strings.Join(bad, "\n"))
	}
}
