package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// maxAnswer caps the answers the client reads: a JSON result or an error.
const maxAnswer = 1 << 20

// A Client calls the admin API of a running sumd.
type Client struct {
	// URL is sumd's base URL, such as https://sumd.example.com.
	URL string
	// Token is the admin token (see ReadTokenFile).
	Token string
	// Auth, if set, adds the credentials to each request instead of Token:
	// an admin's basic credentials or token, for a server whose access
	// layer knows them (sumd serve -read-auth).
	Auth func(*http.Request) error
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// An Error is a non-200 answer of the API: its status and text.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Fetch asks sumd to fetch m from its upstream proxy and record it.
func (c *Client) Fetch(ctx context.Context, m module.Version) (*Result, error) {
	body, err := json.Marshal(map[string]string{"module": m.Path, "version": m.Version})
	if err != nil {
		return nil, err
	}
	return c.post(ctx, "/admin/fetch", "application/json", bytes.NewReader(body))
}

// Upload sends the module zip at zipPath, and the go.mod at modPath unless
// it is "", for sumd to hash and record as m. Files are streamed, not read
// into memory.
func (c *Client) Upload(ctx context.Context, m module.Version, zipPath, modPath string) (*Result, error) {
	files := []struct{ field, path string }{{"zip", zipPath}, {"mod", modPath}}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("failed to upload %s: %w", m, err)
		}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeUpload(mw, m, files[0].path, files[1].path))
	}()
	res, err := c.post(ctx, "/admin/upload", mw.FormDataContentType(), pr)
	pr.Close() // stops the writer if the server answered early
	return res, err
}

// writeUpload writes the multipart body: text fields first, then files.
func writeUpload(mw *multipart.Writer, m module.Version, zipPath, modPath string) error {
	if err := mw.WriteField("module", m.Path); err != nil {
		return err
	}
	if err := mw.WriteField("version", m.Version); err != nil {
		return err
	}
	if err := writeFile(mw, "zip", zipPath); err != nil {
		return err
	}
	if modPath != "" {
		if err := writeFile(mw, "mod", modPath); err != nil {
			return err
		}
	}
	return mw.Close()
}

func writeFile(mw *multipart.Writer, field, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := mw.CreateFormFile(field, field)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

// Add sends recs, at most tlog.MaxAddRecords, to be recorded all or
// nothing, as go.sum lines; with check, to be checked only (the answer
// lists the conflicts, each at the line of its record: record i's lines
// are 2i+1 and 2i+2). An add with conflicts is an *Error with status 409
// naming each.
func (c *Client) Add(ctx context.Context, recs []gosum.Record, check bool) (*AddResult, error) {
	var body bytes.Buffer
	for _, r := range recs {
		body.Write(r.Text())
	}
	path := "/admin/add"
	if check {
		path += "?check=1"
	}
	data, err := c.do(ctx, path, "text/plain; charset=utf-8", &body)
	if err != nil {
		return nil, err
	}
	var res AddResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("failed to decode the answer: %w", err)
	}
	return &res, nil
}

// post sends body to path and decodes the result.
func (c *Client) post(ctx context.Context, path, ctype string, body io.Reader) (*Result, error) {
	data, err := c.do(ctx, path, ctype, body)
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("failed to decode the answer: %w", err)
	}
	return &res, nil
}

// do sends body to path and returns the body of a 200 answer; another
// status is an *Error.
func (c *Client) do(ctx context.Context, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("failed to read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	return data, nil
}

// send sends req with the client's credentials: Auth if set, else the admin
// token as a bearer token.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Auth != nil {
		if err := c.Auth(req); err != nil {
			return nil, err
		}
	} else {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}
