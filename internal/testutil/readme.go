package testutil

import (
	"os"
	"strings"
	"testing"
)

// GeneratedSection fails the test when the text of file between the begin
// and end markers is not content, the text the code generates; with
// UPDATE_README set it rewrites the section instead.
func GeneratedSection(t testing.TB, file, begin, end, content string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q markers", file, begin, end)
	}
	want := text[:i+len(begin)] + content + text[j:]
	if want == text {
		return
	}
	if os.Getenv("UPDATE_README") != "" {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s differs from what the code generates between %q and %q; run with UPDATE_README=1", file, begin, end)
}
